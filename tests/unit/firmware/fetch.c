/* Tests of firmware/fetch.c's URL parser: addresses and ports, what it
 * refuses and the reason it gives. */
#include <arpa/inet.h>

#include "runner.h"
#include "firmware/fetch.c"

TEST(http_urls_with_an_address_parse)
{
	struct fetch_url u;
	char err[200];
	struct sockaddr_in *s4 = (struct sockaddr_in *)&u.sa;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&u.sa;

	CHECK(fetch_url_parse("http://10.0.2.2:8080/b/keel.bundle", &u, err, sizeof(err)) == 0);
	CHECK(s4->sin_family == AF_INET && ntohs(s4->sin_port) == 8080);
	CHECK_STR(u.host, "10.0.2.2:8080");
	CHECK_STR(u.path, "/b/keel.bundle");
	CHECK(fetch_url_parse("http://192.168.1.1", &u, err, sizeof(err)) == 0);
	CHECK(ntohs(s4->sin_port) == 80);
	CHECK_STR(u.path, "/");
	CHECK(fetch_url_parse("http://[::1]:81/x?y=1", &u, err, sizeof(err)) == 0);
	CHECK(s6->sin6_family == AF_INET6 && ntohs(s6->sin6_port) == 81);
	CHECK_STR(u.host, "[::1]:81");
	CHECK_STR(u.path, "/x?y=1");
}

TEST(what_is_refused_is_named)
{
	struct fetch_url u;
	char err[200];

	CHECK(fetch_url_parse("https://10.0.0.1/x", &u, err, sizeof(err)) != 0);
	CHECK(strstr(err, "https is not supported") != NULL);
	CHECK(fetch_url_parse("ftp://10.0.0.1/x", &u, err, sizeof(err)) != 0);
	CHECK(strstr(err, "must start with http://") != NULL);
	CHECK(fetch_url_parse("http://updates.example.com/x", &u, err, sizeof(err)) != 0);
	CHECK(strstr(err, "'updates.example.com' is not an IP address") != NULL);
	CHECK(fetch_url_parse("http://10.0.0.1:0/x", &u, err, sizeof(err)) != 0);
	CHECK(fetch_url_parse("http://10.0.0.1:70000/x", &u, err, sizeof(err)) != 0);
	CHECK(strstr(err, "port") != NULL);
	CHECK(fetch_url_parse("http://10.0.0.1/a b", &u, err, sizeof(err)) != 0);
	CHECK(strstr(err, "space or a control character") != NULL);
	CHECK(fetch_url_parse("http://[::1/x", &u, err, sizeof(err)) != 0);
	CHECK(fetch_url_parse("http:///x", &u, err, sizeof(err)) != 0);
	CHECK(fetch_url_parse("http://10.0.0.1x/", &u, err, sizeof(err)) != 0);
}
