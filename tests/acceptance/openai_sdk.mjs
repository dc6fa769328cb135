// Acceptance with a real client: the official `openai` npm package against a running mmserve, changing
// nothing but baseURL. Starts the server binary given as argv[2] on a free port with the demo model and a
// fresh data dir, makes a user key with the admin key, then checks the API as an SDK user sees it.
// Exit code 0 when every check passes; each failure is printed.
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import assert from "node:assert/strict";
import OpenAI from "openai";

const [binary, repo] = [process.argv[2], resolve(process.argv[3] ?? ".")];
const dir = mkdtempSync(join(tmpdir(), "mm_acceptance_"));
const admin = "acceptance-admin-key-0123456789";
const model = "stories260k";
writeFileSync(join(dir, "mmserve.json"), JSON.stringify({
  host: "127.0.0.1", port: 0, data_dir: join(dir, "data"), admin_key: admin,
  models: [{ id: model, kind: "llm", path: join(repo, "models/demo/stories260K-f32.gguf"), n_ctx: 1024 }],
  prices: { "chat.completions": 1000, completions: 500 },
}));

const server = spawn(binary, ["serve", "--config", join(dir, "mmserve.json")], { stdio: ["ignore", "pipe", "pipe"] });
let stderr = "";
server.stderr.on("data", (d) => { stderr += d; });
const url = await new Promise((ok, fail) => {
  let out = "";
  server.stdout.on("data", (d) => {
    out += d;
    const m = out.match(/listening on (http:\/\/\S+)/);
    if (m) ok(m[1]);
  });
  server.on("exit", (code) => fail(new Error(`mmserve exited ${code}: ${stderr}`)));
  setTimeout(() => fail(new Error("mmserve did not start in 20 s")), 20000);
});

let failures = 0;
async function check(name, fn) {
  try {
    await fn();
    console.log(`ok   ${name}`);
  } catch (e) {
    failures++;
    console.log(`FAIL ${name}: ${e?.stack ?? e}`);
  }
}

try {
  // Wait for the model, then make a user key.
  for (let i = 0; i < 100; i++) {
    const r = await fetch(`${url}/ready`);
    if (r.status === 200) break;
    await new Promise((ok) => setTimeout(ok, 100));
  }
  const created = await (await fetch(`${url}/v1/admin/keys`, {
    method: "POST", headers: { Authorization: `Bearer ${admin}`, "Content-Type": "application/json" },
    body: JSON.stringify({ user: "sdk", budget: 1000000, period: "month" }),
  })).json();
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: created.key, maxRetries: 0 });

  await check("models.list names the demo model", async () => {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    assert.ok(ids.includes(model), JSON.stringify(ids));
  });

  await check("chat.completions, greedy", async () => {
    const r = await client.chat.completions.create({
      model, messages: [{ role: "user", content: "Once upon a time" }], max_tokens: 20, temperature: 0,
    });
    assert.equal(r.object, "chat.completion");
    assert.equal(r.choices[0].message.role, "assistant");
    assert.ok(r.choices[0].message.content.length > 0);
    assert.equal(r.choices[0].finish_reason, "length");
    assert.equal(r.usage.completion_tokens, 20);
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 20);
  });

  await check("chat.completions streamed with include_usage matches the whole answer", async () => {
    const body = { model, messages: [{ role: "user", content: "Lily and Tom" }], max_tokens: 24, temperature: 0 };
    const whole = await client.chat.completions.create(body);
    const stream = await client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
    let text = "", finish = null, usage = null;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        text += c.delta?.content ?? "";
        if (c.finish_reason) finish = c.finish_reason;
      }
    }
    assert.equal(text, whole.choices[0].message.content);
    assert.equal(finish, whole.choices[0].finish_reason);
    for (const k of ["prompt_tokens", "completion_tokens", "total_tokens"]) assert.equal(usage[k], whole.usage[k], k);
  });

  await check("completions with a stop string", async () => {
    const r = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 60, temperature: 0, stop: ["."] });
    assert.equal(r.object, "text_completion");
    assert.equal(r.choices[0].finish_reason, "stop");
    assert.ok(!r.choices[0].text.includes("."), r.choices[0].text);
  });

  await check("seeded sampling repeats", async () => {
    const body = { model, prompt: "The dog", max_tokens: 16, temperature: 0.9, seed: 7 };
    const a = await client.completions.create(body);
    const b = await client.completions.create(body);
    assert.equal(a.choices[0].text, b.choices[0].text);
  });

  await check("n choices, whole and through the SDK's stream helper", async () => {
    const body = { model, messages: [{ role: "user", content: "Tell me a story" }], max_tokens: 8, temperature: 0.9, seed: 3, n: 2 };
    const r = await client.chat.completions.create(body);
    assert.equal(r.choices.length, 2);
    assert.deepEqual(r.choices.map((c) => c.index), [0, 1]);
    const s = client.beta.chat.completions.stream(body);
    const done = await s.finalChatCompletion();
    assert.equal(done.choices.length, 2);
    for (const i of [0, 1]) assert.equal(done.choices[i].message.content, r.choices[i].message.content, `choice ${i}`);
  });

  await check("chat logprobs", async () => {
    const r = await client.chat.completions.create({
      model, messages: [{ role: "user", content: "Hi" }], max_tokens: 3, temperature: 0, logprobs: true, top_logprobs: 2,
    });
    const lp = r.choices[0].logprobs.content;
    assert.equal(lp.length, 3);
    for (const t of lp) {
      assert.ok(t.logprob <= 0);
      assert.equal(t.top_logprobs.length, 2);
      assert.equal(t.top_logprobs[0].logprob, t.logprob, "greedy picks the top token");
    }
  });

  const weather = {
    type: "object",
    properties: { city: { enum: ["Paris", "Rome"] }, days: { type: "integer" } },
    required: ["city", "days"],
  };

  await check("a forced tool call comes back as tool_calls with parseable arguments", async () => {
    const r = await client.chat.completions.create({
      model, messages: [{ role: "user", content: "Weather?" }], max_tokens: 200, temperature: 0,
      tools: [{ type: "function", function: { name: "get_weather", description: "Forecast", parameters: weather } }],
      tool_choice: { type: "function", function: { name: "get_weather" } },
    });
    const c = r.choices[0];
    assert.equal(c.finish_reason, "tool_calls", JSON.stringify(c));
    assert.equal(c.message.tool_calls.length, 1);
    assert.equal(c.message.tool_calls[0].function.name, "get_weather");
    const args = JSON.parse(c.message.tool_calls[0].function.arguments);
    assert.ok(["Paris", "Rome"].includes(args.city), JSON.stringify(args));
    assert.ok(Number.isInteger(args.days));
  });

  await check("a json_schema response parses and fits", async () => {
    const r = await client.chat.completions.create({
      model, messages: [{ role: "user", content: "Weather as JSON" }], max_tokens: 200, temperature: 0.7, seed: 5,
      response_format: { type: "json_schema", json_schema: { name: "weather", schema: weather, strict: true } },
    });
    const doc = JSON.parse(r.choices[0].message.content);
    assert.ok(["Paris", "Rome"].includes(doc.city));
    assert.ok(Number.isInteger(doc.days));
  });

  await check("unknown model is a NotFoundError (404 model_not_found)", async () => {
    await assert.rejects(
      client.chat.completions.create({ model: "nope", messages: [{ role: "user", content: "x" }] }),
      (e) => e instanceof OpenAI.NotFoundError && e.code === "model_not_found");
  });

  await check("bad key is an AuthenticationError (401)", async () => {
    const bad = new OpenAI({ baseURL: `${url}/v1`, apiKey: "sk-wrong", maxRetries: 0 });
    await assert.rejects(bad.completions.create({ model, prompt: "x" }), (e) => e instanceof OpenAI.AuthenticationError);
  });

  await check("bad parameter is a BadRequestError naming it", async () => {
    await assert.rejects(
      client.completions.create({ model, prompt: "x", temperature: 5 }),
      (e) => e instanceof OpenAI.BadRequestError && /temperature/.test(e.message));
  });
} finally {
  server.kill("SIGTERM");
  await new Promise((ok) => server.on("exit", ok));
  rmSync(dir, { recursive: true, force: true });
}
console.log(failures ? `${failures} check(s) failed` : "all checks passed");
process.exit(failures ? 1 : 0);
