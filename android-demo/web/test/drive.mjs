// Drive the demo page in headless Chromium (Debian's, through playwright-core) on a bundle's golden inputs
// and write what the page computed as JSON. Used by tests/android/test_web_demo.py:
//   node test/drive.mjs URL GOLDEN.json OUT.json
import fs from "node:fs";
import { chromium } from "playwright-core";

const [url, goldenPath, outPath] = process.argv.slice(2);
if (!outPath) {
  console.error("usage: node test/drive.mjs URL GOLDEN.json OUT.json");
  process.exit(2);
}
const golden = JSON.parse(fs.readFileSync(goldenPath, "utf8"));
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking", "--no-first-run"],
});
const errors = [];
const out = { kind: golden.kind, errors };
try {
  const page = await browser.newPage();
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error") errors.push(`console: ${m.text()}`); });
  const t0 = Date.now();
  await page.goto(url);
  out.info = await page.evaluate(() => window.edgesmith.ready);
  out.load_ms = Date.now() - t0;
  out.status_text = await page.textContent("#status");
  if (golden.kind === "image") {
    out.classified = await page.evaluate((cases) => window.edgesmith.classify(cases), golden.images);
  } else {
    const texts = golden.texts.map((t) => t.text);
    out.tokens = await page.evaluate((ts) => ts.map((t) => window.edgesmith.tokenize([t]).ids), texts);
    out.batches = await page.evaluate(([ts, pads]) => pads.map((p) => window.edgesmith.tokenize(ts, p)), [texts, golden.batches.map((b) => b.pad_to)]);
    const t1 = Date.now();
    out.sweep = await page.evaluate((stop) => window.edgesmith.sweep(stop), golden.sweep.stop);
    out.sweep_ms = Date.now() - t1;
    out.embeddings = await page.evaluate((ts) => window.edgesmith.embed(ts), texts);
    // the compare screen, as a user would click it
    await page.fill("#text-a", texts[0]);
    await page.fill("#text-b", texts[1]);
    await page.click("#run-text");
    await page.waitForFunction(() => document.querySelector("#cosine").textContent !== "–");
    out.cosine_text = await page.textContent("#cosine");
  }
  out.replayed = await page.evaluate((sc) => sc.map((s) => window.edgesmith.replay(s)), golden.telemetry);
  await page.click("nav button[data-screen=latency]");
  out.latency = await page.evaluate(() => window.edgesmith.latency(100));
  out.latency_text = { p50: await page.textContent("#lat-p50"), p90: await page.textContent("#lat-p90"),
    runtime: await page.textContent("#lat-runtime"), threads: await page.textContent("#lat-threads") };
  out.flushed = await page.evaluate(() => window.edgesmith.flush());
  out.sent_text = await page.textContent("#sent");
} catch (e) {
  errors.push(`driver: ${e.message}`);
} finally {
  await browser.close();
}
fs.writeFileSync(outPath, JSON.stringify(out));
process.exit(errors.length ? 1 : 0);
