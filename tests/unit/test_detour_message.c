/* SPDX-License-Identifier: ISC */
/*
 * test_detour_message.c - unit tests for what `detour send` does with a
 * message (src/cmd/detour/message.c): reading it as sendmail does (whole
 * and one octet at a time), the address lists of To/Cc/Bcc, removing Bcc,
 * adding fields; and the local queue's files (src/cmd/detour/localqueue.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "cmd/detour/common.c"
#include "cmd/detour/localqueue.c"
#include "cmd/detour/message.c"

static struct message msg_of(const char *text)
{
	struct message m = {0};
	m.len = strlen(text);
	m.cap = m.len + 1;
	m.data = xmalloc(m.cap);
	memcpy(m.data, text, m.len);
	return m;
}

static void expect_addrs(const char *value, const char *const *want, size_t nwant)
{
	struct addr_list l = {0};
	size_t n = message_parse_addrs(value, strlen(value), &l);
	if (n != nwant || l.n != nwant) {
		fprintf(stderr, "parsing [%s] gave %zu:\n", value, l.n);
		for (size_t i = 0; i < l.n; i++)
			fprintf(stderr, "  [%s]\n", l.addrs[i]);
		fail();
	}
	for (size_t i = 0; i < nwant; i++)
		assert_string_equal(l.addrs[i], want[i]);
	addr_list_free(&l);
}

#define EXPECT(value, ...)                                                                         \
	do {                                                                                       \
		const char *const want_[] = {__VA_ARGS__};                                         \
		expect_addrs(value, want_, ARRAY_SIZE(want_));                                     \
	} while (0)

static void test_address_lists(void **state)
{
	(void)state;
	EXPECT("bob@example.net", "bob@example.net");
	EXPECT(" Bob <bob@example.net>", "bob@example.net");
	EXPECT("Bob <bob@example.net>, carol@example.net (Carol C)", "bob@example.net",
	       "carol@example.net");
	EXPECT("\"Doe, John\" <john@example.net>, \"a\\\"b\" <ab@example.net>", "john@example.net",
	       "ab@example.net");
	EXPECT("friends: a@example.net, B <b@example.net>;, c@example.net", "a@example.net",
	       "b@example.net", "c@example.net");
	EXPECT("undisclosed-recipients:;");
	EXPECT("<@relay.example:route@example.net>", "route@example.net");
	EXPECT("\"quoted local\"@example.net", "\"quoted local\"@example.net");
	EXPECT("(comment (nested)) a@example.net (trailing)", "a@example.net");
	EXPECT("a@example.net,\r\n b@example.net", "a@example.net", "b@example.net");
	EXPECT("John Doe");
	EXPECT("");
	EXPECT(",,, ,");
	EXPECT("root", "root");
	EXPECT("Bob < bob@example.net >", "bob@example.net");
}

static void test_header(void **state)
{
	(void)state;
	struct message m = msg_of("To: Bob <bob@example.net>,\n"
	                          "  carol@example.net\n"
	                          "bcc: secret@example.net\n"
	                          "Subject: hi\n"
	                          "BCC: other@example.net,\n"
	                          "\tthird@example.net\n"
	                          "\n"
	                          "Bcc: in the body@example.net\n");
	assert_true(message_has_field(&m, "to"));
	assert_true(message_has_field(&m, "Subject"));
	assert_false(message_has_field(&m, "From"));
	struct addr_list l = {0};
	assert_int_equal(message_field_addrs(&m, "To", &l), 2);
	assert_int_equal(message_field_addrs(&m, "Bcc", &l), 3);
	assert_string_equal(l.addrs[1], "carol@example.net");
	assert_string_equal(l.addrs[4], "third@example.net");
	addr_list_free(&l);
	assert_int_equal(message_remove_field(&m, "Bcc"), 2);
	const char *want = "To: Bob <bob@example.net>,\n"
	                   "  carol@example.net\n"
	                   "Subject: hi\n"
	                   "\n"
	                   "Bcc: in the body@example.net\n";
	assert_int_equal(m.len, strlen(want));
	assert_memory_equal(m.data, want, m.len);
	message_free(&m);

	/* CRLF, and the field names' syntax */
	m = msg_of("X-A: 1\r\nTo: a@example.net\r\n\r\nbody\r\n");
	assert_int_equal(message_header_end(&m), strlen("X-A: 1\r\nTo: a@example.net\r\n\r\n"));
	assert_int_equal(message_field_addrs(&m, "To", &l), 1);
	addr_list_free(&l);
	message_free(&m);

	/* no header at all: fields are added with an empty line after them */
	m = msg_of("just a line of text\n");
	assert_int_equal(message_header_end(&m), 0);
	message_prepend(&m, "From: a@example.net\n");
	const char *want2 = "From: a@example.net\n\njust a line of text\n";
	assert_int_equal(m.len, strlen(want2));
	assert_memory_equal(m.data, want2, m.len);
	message_free(&m);

	/* a header without a body */
	m = msg_of("Subject: only\n");
	assert_int_equal(message_header_end(&m), m.len);
	message_prepend(&m, "Date: x\n");
	assert_int_equal(m.len, strlen("Date: x\nSubject: only\n"));
	assert_false(message_is_8bit(&m));
	message_free(&m);
	m = msg_of("Subject: caf\xc3\xa9\n\n");
	assert_true(message_is_8bit(&m));
	message_free(&m);
	/* an empty message */
	m = msg_of("");
	assert_int_equal(message_header_end(&m), 0);
	message_free(&m);
}

/* read_all - the reader fed whole, then one octet at a time: the same. */
static void read_both(const char *input, bool dot_ends, size_t max, const char *want,
                      enum message_read_result want_r)
{
	for (int bytewise = 0; bytewise < 2; bytewise++) {
		struct message_reader r;
		message_reader_init(&r, dot_ends, max);
		size_t len = strlen(input), step = bytewise ? 1 : (len ? len : 1);
		enum message_read_result res = MESSAGE_READ_OK;
		for (size_t off = 0; off < len && res == MESSAGE_READ_OK; off += step)
			res = message_reader_feed(&r, input + off,
			                          len - off < step ? len - off : step);
		struct message m;
		message_reader_finish(&r, &m);
		assert_int_equal(res, want_r);
		if (want != NULL) {
			assert_int_equal(m.len, strlen(want));
			assert_memory_equal(m.data, want, m.len);
		}
		message_free(&m);
	}
}

static void test_reading(void **state)
{
	(void)state;
	const char *text = "Subject: x\n\nline\n.\nafter\n";
	read_both(text, true, 1000, "Subject: x\n\nline\n", MESSAGE_READ_OK);
	read_both(text, false, 1000, text, MESSAGE_READ_OK);
	read_both("a\r\n.\r\nb\r\n", true, 1000, "a\r\n", MESSAGE_READ_OK);
	read_both(".\n", true, 1000, "", MESSAGE_READ_OK);
	read_both("a\n.", true, 1000, "a\n", MESSAGE_READ_OK);
	read_both("a\n..\n.x\n. \n", true, 1000, "a\n..\n.x\n. \n", MESSAGE_READ_OK);
	read_both("", true, 1000, "", MESSAGE_READ_OK);
	/* the size limit: at it, and one past it */
	read_both("0123456789", false, 10, "0123456789", MESSAGE_READ_OK);
	read_both("0123456789x", false, 10, NULL, MESSAGE_READ_TOO_BIG);
	/* what follows a lone dot does not count against the limit */
	read_both("0123\n.\n0123456789", true, 10, "0123\n", MESSAGE_READ_OK);

	/* and through a file descriptor */
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(write(fds[1], text, strlen(text)), (ssize_t)strlen(text));
	close(fds[1]);
	struct message m;
	assert_int_equal(message_read(fds[0], true, 1000, &m), MESSAGE_READ_OK);
	assert_int_equal(m.len, strlen("Subject: x\n\nline\n"));
	close(fds[0]);
	message_free(&m);
}

static char qdir[256];

static void test_queue_files(void **state)
{
	(void)state;
	str_copy(qdir, "/tmp/detour-queue-XXXXXX", sizeof(qdir));
	assert_non_null(mkdtemp(qdir));
	char *dir = xasprintf("%s/queue", qdir);
	struct addr_list rcpts = {0};
	addr_list_add(&rcpts, "bob@example.net", 15);
	addr_list_add(&rcpts, "carol@example.net", 17);
	struct message m = msg_of("Subject: queued\n\nbody\n");
	char err[512], *id1, *id2;
	assert_int_equal(
	    localqueue_add(dir, "work", "alice@example.org", &rcpts, &m, &id1, err, sizeof(err)),
	    0);
	assert_int_equal(localqueue_add(dir, "home", "", &rcpts, &m, &id2, err, sizeof(err)), 0);
	struct stat st;
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	char *path = xasprintf("%s/%s", dir, id1);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	free(path);

	char **ids;
	assert_int_equal(localqueue_list(dir, &ids), 2);
	assert_string_equal(ids[0], id1); /* oldest first */
	assert_string_equal(ids[1], id2);

	struct localqueue_entry e;
	assert_int_equal(localqueue_load(dir, id1, &e, err, sizeof(err)), 1);
	assert_string_equal(e.account, "work");
	assert_string_equal(e.from, "alice@example.org");
	assert_int_equal(e.rcpts.n, 2);
	assert_string_equal(e.rcpts.addrs[1], "carol@example.net");
	assert_int_equal(e.msg.len, m.len);
	assert_memory_equal(e.msg.data, m.data, m.len);
	/* locked: a second loader skips it */
	struct localqueue_entry other;
	assert_int_equal(localqueue_load(dir, id1, &other, err, sizeof(err)), 0);
	/* keep only one recipient */
	struct addr_list left = {0};
	addr_list_add(&left, "carol@example.net", 17);
	assert_int_equal(localqueue_rewrite(&e, &left, err, sizeof(err)), 0);
	localqueue_entry_free(&e);
	assert_int_equal(localqueue_load(dir, id1, &e, err, sizeof(err)), 1);
	assert_int_equal(e.rcpts.n, 1);
	assert_string_equal(e.rcpts.addrs[0], "carol@example.net");
	assert_int_equal(localqueue_remove(&e), 0);
	localqueue_entry_free(&e);
	assert_int_equal(localqueue_load(dir, id1, &e, err, sizeof(err)), 0); /* gone */

	/* the null sender survives */
	assert_int_equal(localqueue_load(dir, id2, &e, err, sizeof(err)), 1);
	assert_string_equal(e.from, "");
	localqueue_entry_free(&e);

	/* a file that is not ours is left alone and said */
	char *bad = xasprintf("%s/00000000001-bad", dir);
	FILE *f = fopen(bad, "w");
	fputs("not a queue file\n", f);
	fclose(f);
	assert_int_equal(localqueue_load(dir, "00000000001-bad", &e, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a detour queue file"));
	free(bad);

	for (size_t i = 0; i < 2; i++)
		free(ids[i]);
	free(ids);
	free(id1);
	free(id2);
	addr_list_free(&left);
	addr_list_free(&rcpts);
	message_free(&m);
	free(dir);
	char *cmd = xasprintf("rm -rf '%s'", qdir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
}

static void test_queue_format(void **state)
{
	(void)state;
	struct addr_list rcpts = {0};
	addr_list_add(&rcpts, "b@example.net", 13);
	size_t hlen;
	char *h = localqueue_format("work", "a@example.org", &rcpts, 1234, &hlen);
	assert_string_equal(h, "detour-queue 1\naccount work\nfrom a@example.org\n"
	                       "rcpt b@example.net\ncreated 1234\n\n");
	char *whole = xasprintf("%smessage\n", h);
	struct localqueue_entry e = {.fd = -1};
	assert_int_equal(localqueue_parse(whole, strlen(whole), &e), 0);
	assert_int_equal(e.created, 1234);
	assert_int_equal(e.msg.len, 8);
	localqueue_entry_free(&e);
	/* no recipient, no account, no end of header, wrong magic */
	const char *bad[] = {
	    "detour-queue 1\naccount w\nfrom a@b\ncreated 1\n\nx",
	    "detour-queue 1\nfrom a@b\nrcpt c@d\n\nx",
	    "detour-queue 1\naccount w\nfrom a@b\nrcpt c@d\n",
	    "detour-queue 2\naccount w\nfrom a@b\nrcpt c@d\n\nx",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct localqueue_entry b = {.fd = -1};
		assert_int_equal(localqueue_parse(bad[i], strlen(bad[i]), &b), -1);
		localqueue_entry_free(&b);
	}
	free(whole);
	free(h);
	addr_list_free(&rcpts);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_address_lists), cmocka_unit_test(test_header),
	    cmocka_unit_test(test_reading),       cmocka_unit_test(test_queue_files),
	    cmocka_unit_test(test_queue_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
