/* Tests of core/tls.c's handshake flights: the server's records go out
 * gathered, and a flight larger than the socket takes waits in the
 * connection's stash and still reaches the client whole and in order (a
 * byte out of place would fail the handshake's MACs). Over real loopback
 * TCP with small socket buffers and a certificate chain of 11 KiB. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "runner.h"
#include "core/tls.c"

static int nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* A connected pair on 127.0.0.1: the client's receive buffer and the
 * server's send buffer at the kernel's minimum. */
static void tcp_pair(int *cfd, int *sfd)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0), small = 1;

	CHECK(l >= 0);
	CHECK(bind(l, (struct sockaddr *)&a, sizeof(a)) == 0);
	CHECK(listen(l, 1) == 0);
	CHECK(getsockname(l, (struct sockaddr *)&a, &alen) == 0);
	*cfd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(*cfd >= 0);
	CHECK(setsockopt(*cfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)) == 0);
	CHECK(connect(*cfd, (struct sockaddr *)&a, sizeof(a)) == 0);
	*sfd = accept(l, NULL, NULL);
	CHECK(*sfd >= 0);
	CHECK(setsockopt(*sfd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)) == 0);
	CHECK(nonblock(*cfd) == 0 && nonblock(*sfd) == 0);
	close(l);
}

/* The self-signed certificate 20 times over: one Certificate message of
 * about 11 KiB, more than the gathering buffer and the socket take. */
static void big_chain(const char *dir, struct core_tls_pair *pair, char *cert, char *key)
{
	char one[512], err[256], pem[2048];
	FILE *in, *out;
	size_t n;

	snprintf(one, sizeof(one), "%s/one.crt", dir);
	snprintf(cert, 512, "%s/chain.crt", dir);
	snprintf(key, 512, "%s/key.pem", dir);
	if (core_tls_self_signed(one, key, "flight.test", err, sizeof(err)) != CORE_OK)
		test_fail(__FILE__, __LINE__, "self-signed: %s", err);
	CHECK((in = fopen(one, "r")) != NULL);
	n = fread(pem, 1, sizeof(pem), in);
	fclose(in);
	CHECK(n > 0 && n < sizeof(pem));
	CHECK((out = fopen(cert, "w")) != NULL);
	for (int i = 0; i < 20; i++)
		CHECK(fwrite(pem, 1, n, out) == n);
	fclose(out);
	pair->cert = cert;
	pair->key = key;
}

TEST(a_flight_larger_than_the_socket_arrives_whole)
{
	char dir[] = "/tmp/keel-tlsflight-XXXXXX", cert[512], key[512], err[256];
	struct core_tls_server *srv, *cli;
	struct core_tls_opts opts = { 0 };
	struct core_tls_pair pair;
	struct core_tls *s, *c;
	int cfd, sfd, sdone = 0, cdone = 0, rounds = 0;
	size_t most = 0;
	char got[16];
	ssize_t n;

	CHECK(mkdtemp(dir) != NULL);
	CHECK(core_tls_init() == CORE_OK);
	big_chain(dir, &pair, cert, key);
	srv = core_tls_server_new(&pair, 1, &opts, err, sizeof(err));
	if (srv == NULL)
		test_fail(__FILE__, __LINE__, "server: %s", err);
	CHECK((cli = core_tls_client_new(NULL, false, err, sizeof(err))) != NULL);
	tcp_pair(&cfd, &sfd);
	CHECK((s = core_tls_new(srv, sfd)) != NULL);
	CHECK((c = core_tls_client(cli, cfd, "flight.test")) != NULL);

	/* The ClientHello, then the server's whole flight at once: the
	 * client reads nothing yet, so the socket cannot take it all. */
	CHECK(core_tls_handshake(c, err, sizeof(err)) == CORE_AGAIN);
	usleep(20000);
	CHECK(core_tls_handshake(s, err, sizeof(err)) == CORE_AGAIN);
	CHECK(s->stash_len > 0);
	CHECK(core_tls_want(s) == CORE_IO_WRITE);	/* not READ: the client waits */

	while (!(sdone && cdone)) {
		int rc;

		if (++rounds > 2000)
			test_fail(__FILE__, __LINE__, "no handshake after %d rounds", rounds);
		if (s->stash_len > most)
			most = s->stash_len;
		if (!cdone) {
			rc = core_tls_handshake(c, err, sizeof(err));
			if (rc == CORE_ERROR)
				test_fail(__FILE__, __LINE__, "client: %s", err);
			cdone = rc == CORE_OK;
		}
		if (!sdone) {
			rc = core_tls_handshake(s, err, sizeof(err));
			if (rc == CORE_ERROR)
				test_fail(__FILE__, __LINE__, "server: %s", err);
			sdone = rc == CORE_OK;
		}
		usleep(200);
	}
	CHECK(s->stash_len == 0 && s->stash == NULL);
	CHECK(most > 0);

	/* Application data after it, in order. */
	{
		struct iovec iov = { .iov_base = "hello", .iov_len = 5 };

		CHECK(core_tls_writev(s, &iov, 1) == 5);
	}
	for (rounds = 0; (n = core_tls_read(c, got, sizeof(got))) == CORE_AGAIN && rounds < 1000;
	     rounds++)
		usleep(1000);
	CHECK(n == 5 && memcmp(got, "hello", 5) == 0);

	core_tls_free(c);
	core_tls_free(s);
	core_tls_server_drop(cli);
	core_tls_server_drop(srv);
	close(cfd);
	close(sfd);
	unlink(cert);
	unlink(key);
	snprintf(cert, sizeof(cert), "%s/one.crt", dir);
	unlink(cert);
	rmdir(dir);
}
