// /metrics through a real server: Prometheus text with requests by route and status, latency histograms,
// requests in flight, stage queue depths and meter events; raw targets never become labels.
#include <gtest/gtest.h>

#include <string>

#include "services/metrics.h"
#include "services/server.h"
#include "test_client.h"

namespace mm::services {
namespace {

using mm::test::test_client;

TEST(metrics, counts_requests_by_route_and_status_and_renders_prometheus_text) {
    metrics stats;
    int64_t depth = 3;
    stats.queue_depth_source("text", [&] { return depth; });
    stats.meter_event("chat.completions", "committed");
    stats.meter_event("chat.completions", "committed");
    stats.meter_event("chat.completions", "voided");

    auto table = server_routes();
    table.push_back(metrics_route(stats));
    server_params p;
    p.host = "127.0.0.1";
    p.port = 0;
    server srv(p, std::move(table), &stats);
    ASSERT_TRUE(srv.start());
    test_client c(srv.port());
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(c.request("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
    ASSERT_TRUE(c.request("GET /no/such/place?x=1 HTTP/1.1\r\nHost: x\r\n\r\n"));
    ASSERT_TRUE(c.request("POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"));
    // Refused while being read: each closes its connection, and still counts.
    for (const std::string& refused : {std::string("POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n"),
                                      "GET /health HTTP/1.1\r\nX-Pad: " + std::string(20'000, 'p') + "\r\n\r\n",
                                      std::string("GARBAGE\r\n\r\n")}) {
        test_client once(srv.port());
        ASSERT_TRUE(once.request(refused));
    }
    auto res = c.request("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 200u);
    EXPECT_EQ(res->at(boost::beast::http::field::content_type), "text/plain; version=0.0.4; charset=utf-8");
    const std::string& m = res->body();

    const char* want[] = {
        "mmserve_http_requests_total{route=\"/health\",method=\"GET\",status=\"200\"} 3\n",
        "mmserve_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1\n",
        "mmserve_http_requests_total{route=\"/health\",method=\"POST\",status=\"405\"} 1\n",
        // Beast refuses a declared length over the limit before the head is complete: no route to name.
        "mmserve_http_requests_total{route=\"unparsed\",method=\"unknown\",status=\"413\"} 1\n",
        "mmserve_http_requests_total{route=\"unparsed\",method=\"unknown\",status=\"431\"} 1\n",
        "mmserve_http_requests_total{route=\"unparsed\",method=\"unknown\",status=\"400\"} 1\n",
        "mmserve_http_request_duration_seconds_bucket{route=\"/health\",le=\"+Inf\"} 4\n",
        "mmserve_http_request_duration_seconds_count{route=\"/health\"} 4\n",
        "# TYPE mmserve_http_request_duration_seconds histogram\n",
        "mmserve_http_requests_in_flight 1\n",  // the /metrics request itself
        "mmserve_stage_queue_depth{stage=\"text\"} 3\n",
        "mmserve_meter_requests_total{endpoint=\"chat.completions\",outcome=\"committed\"} 2\n",
        "mmserve_meter_requests_total{endpoint=\"chat.completions\",outcome=\"voided\"} 1\n",
    };
    for (const char* w : want) EXPECT_NE(m.find(w), std::string::npos) << "missing: " << w << "\nin:\n" << m;
    EXPECT_EQ(m.find("no/such"), std::string::npos) << "a raw target leaked into a label";
}

TEST(metrics, histogram_buckets_are_cumulative) {
    metrics stats;
    stats.request_started();
    stats.request_finished("/r", "GET", 200, 0.003);  // first bucket
    stats.request_started();
    stats.request_finished("/r", "GET", 200, 0.2);  // 0.25 bucket
    stats.request_started();
    stats.request_finished("/r", "GET", 500, 100.0);  // past every bucket
    const std::string m = stats.render();
    for (const char* w : {"le=\"0.005\"} 1\n", "le=\"0.1\"} 1\n", "le=\"0.25\"} 2\n", "le=\"60\"} 2\n", "le=\"+Inf\"} 3\n",
                          "mmserve_http_request_duration_seconds_sum{route=\"/r\"} 100.203\n",
                          "mmserve_http_requests_in_flight 0\n"})
        EXPECT_NE(m.find(w), std::string::npos) << w << "\n" << m;
}

}  // namespace
}  // namespace mm::services
