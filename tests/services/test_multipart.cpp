// multipart_parse on the bodies real clients send and on every way a body can be wrong, then through a real
// server on an upload route: good uploads parse, bad ones are 400 in OpenAI's shape, oversized ones 413.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "multipart.h"
#include "services/route_reply.h"
#include "services/server.h"
#include "test_client.h"

namespace mm::services {
namespace {

using json = nlohmann::json;
namespace http = boost::beast::http;
const std::string k_ct = "multipart/form-data; boundary=XyZ";

std::string part(const std::string& headers, const std::string& data) { return "--XyZ\r\n" + headers + "\r\n\r\n" + data + "\r\n"; }

// What the OpenAI SDKs and curl send for a transcription: a file and a few fields.
const std::string k_upload = part("Content-Disposition: form-data; name=\"file\"; filename=\"a b.wav\"\r\nContent-Type: audio/wav",
                                  std::string("RIFF\0\n--XyZ-not-a-boundary\x01", 25)) +
                             part("Content-Disposition: form-data; name=\"model\"", "whisper-1") +
                             part("content-disposition: form-data; name=language", "en") + "--XyZ--\r\n";

TEST(multipart, a_file_and_fields_as_clients_send_them) {
    auto parts = multipart_parse(k_ct, k_upload);
    ASSERT_TRUE(parts) << parts.error().to_string();
    ASSERT_EQ(parts->size(), 3u);
    const auto* file = multipart_find(*parts, "file");
    ASSERT_NE(file, nullptr);
    EXPECT_EQ(file->filename, "a b.wav");
    EXPECT_EQ(file->content_type, "audio/wav");
    EXPECT_EQ(file->data, std::string_view(std::string("RIFF\0\n--XyZ-not-a-boundary\x01", 25)))
        << "the boundary text inside data, without CRLF before it, is data";
    EXPECT_EQ(multipart_find(*parts, "model")->data, "whisper-1");
    EXPECT_EQ(multipart_find(*parts, "model")->content_type, "text/plain");
    EXPECT_FALSE(multipart_find(*parts, "model")->filename);
    EXPECT_EQ(multipart_find(*parts, "language")->data, "en");
    EXPECT_EQ(multipart_find(*parts, "prompt"), nullptr);
}

TEST(multipart, variants_that_are_valid) {
    struct row { const char* name; std::string ct, body; size_t parts; };
    const row rows[] = {
        {"quoted boundary", "multipart/form-data; boundary=\"a:b c\"", "--a:b c\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--a:b c--", 1},
        {"preamble and epilogue", k_ct, "ignored\r\n" + part("Content-Disposition: form-data; name=x", "1") + "--XyZ--\r\nignored too", 1},
        {"empty file", k_ct, part("Content-Disposition: form-data; name=f; filename=\"\"", "") + "--XyZ--", 1},
        {"padding after a boundary", k_ct, "--XyZ  \r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--XyZ--", 1},
        {"escaped quote in a name", k_ct, part("Content-Disposition: form-data; name=\"a\\\"b\"", "1") + "--XyZ--", 1},
        {"no parts", k_ct, "--XyZ--\r\n", 0},
        {"media type case", "Multipart/Form-Data; Boundary=XyZ", part("Content-Disposition: form-data; name=x", "") + "--XyZ--", 1},
    };
    for (const auto& r : rows) {
        auto parts = multipart_parse(r.ct, r.body);
        ASSERT_TRUE(parts) << r.name << ": " << parts.error().to_string();
        EXPECT_EQ(parts->size(), r.parts) << r.name;
    }
    EXPECT_EQ(multipart_find(*multipart_parse(rows[4].ct, rows[4].body), "a\"b")->data, "1");
}

TEST(multipart, every_way_to_be_wrong_is_named) {
    struct row { const char* name; std::string ct, body; const char* says; };
    const std::string big_header = "Content-Disposition: form-data; name=x\r\nX-Pad: " + std::string(9000, 'a');
    std::string many;
    for (int i = 0; i < 65; ++i) many += part("Content-Disposition: form-data; name=f" + std::to_string(i), "1");
    many += "--XyZ--";
    const row rows[] = {
        {"json content type", "application/json", k_upload, "multipart/form-data"},
        {"no boundary", "multipart/form-data", k_upload, "boundary"},
        {"boundary too long", "multipart/form-data; boundary=" + std::string(71, 'a'), k_upload, "boundary"},
        {"boundary with a bad character", "multipart/form-data; boundary=a\x01", k_upload, "boundary"},
        {"unterminated quoted boundary", "multipart/form-data; boundary=\"abc", k_upload, "malformed"},
        {"other boundary in the body", "multipart/form-data; boundary=Other", k_upload, "no boundary line"},
        {"cut in the data", k_ct, k_upload.substr(0, k_upload.find("RIFF") + 8), "closing boundary"},
        {"cut in the headers", k_ct, "--XyZ\r\nContent-Disposition: form-da", "headers are cut"},
        {"boundary without CRLF", k_ct, "--XyZgarbage", "CRLF"},
        {"no disposition", k_ct, part("Content-Type: text/plain", "1") + "--XyZ--", "Content-Disposition"},
        {"not form-data", k_ct, part("Content-Disposition: attachment; name=x", "1") + "--XyZ--", "form-data"},
        {"no name", k_ct, part("Content-Disposition: form-data; filename=a", "1") + "--XyZ--", "no name"},
        {"header without colon", k_ct, part("Content-Disposition: form-data; name=x\r\nbroken", "1") + "--XyZ--", "without a name"},
        {"headers too big", k_ct, part(big_header, "1") + "--XyZ--", "exceed"},
        {"field too big", k_ct, part("Content-Disposition: form-data; name=x", std::string(70000, 'a')) + "--XyZ--", "exceeds"},
        {"too many parts", k_ct, many, "more than 64"},
    };
    for (const auto& r : rows) {
        auto parts = multipart_parse(r.ct, r.body);
        ASSERT_FALSE(parts) << r.name;
        EXPECT_EQ(parts.error().code(), errc::invalid_argument) << r.name;
        EXPECT_NE(parts.error().message().find(r.says), std::string::npos) << r.name << ": " << parts.error().message();
    }
}

TEST(multipart, every_truncation_of_a_good_body_is_refused_cleanly) {
    for (size_t n = 0; n + 1 < k_upload.size(); ++n) {
        auto parts = multipart_parse(k_ct, std::string_view(k_upload).substr(0, n));
        if (parts) {
            // Only a cut inside the final "--XyZ--\r\n" after its "--" can still be a whole body.
            EXPECT_GE(n, k_upload.size() - 2) << n;
        }
    }
}

TEST(multipart, through_a_server_on_an_upload_route) {
    auto sizes = [](const http_request& req) -> result<route_reply> {
        auto it = req.find(http::field::content_type);
        const std::string ct = it == req.end() ? "" : std::string(it->value());
        auto parts = multipart_parse(ct, req.body());
        if (!parts) return parts.error();
        json out = json::object();
        for (const auto& p : *parts) out[p.name] = p.data.size();
        return route_reply{.body = out.dump()};
    };
    auto table = server_routes();
    table.push_back({http::verb::post, "/upload", sizes, nullptr, /*body_limit=*/1 << 20});
    server_params p;
    p.host = "127.0.0.1";
    p.port = 0;
    server srv(p, std::move(table));
    ASSERT_TRUE(srv.start());
    auto post = [&](const std::string& ct, const std::string& body) {
        test::test_client c(srv.port());
        return c.request("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: " + ct + "\r\nContent-Length: " +
                         std::to_string(body.size()) + "\r\n\r\n" + body);
    };
    auto ok = post(k_ct, k_upload);
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->result_int(), 200u);
    EXPECT_EQ(json::parse(ok->body()), (json{{"file", 25}, {"model", 9}, {"language", 2}}));
    for (const auto& [ct, body] : std::vector<std::pair<std::string, std::string>>{
             {"multipart/form-data", k_upload}, {k_ct, k_upload.substr(0, 100)}, {"text/plain", "hello"}}) {
        auto r = post(ct, body);
        ASSERT_TRUE(r);
        EXPECT_EQ(r->result_int(), 400u) << ct;
        const json e = json::parse(r->body());
        EXPECT_EQ(e["error"]["type"], "invalid_request_error");
        EXPECT_NE(e["error"]["message"].get<std::string>().find("multipart"), std::string::npos);
    }
    auto big = post(k_ct, part("Content-Disposition: form-data; name=f; filename=x", std::string((1 << 20) + 10, 'a')) + "--XyZ--");
    ASSERT_TRUE(big);
    EXPECT_EQ(big->result_int(), 413u);
    auto again = post(k_ct, k_upload);
    ASSERT_TRUE(again);
    EXPECT_EQ(again->result_int(), 200u) << "the server keeps serving";
    srv.stop();
}

}  // namespace
}  // namespace mm::services
