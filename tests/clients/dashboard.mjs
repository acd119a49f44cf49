// Drives the web dashboard in Debian's chromium with playwright-core, for the end-to-end test.
//
//   node dashboard.mjs '{"url": "...", "screenshot": "...", "nodes": {"node-a": {"gpus": "...", "models": "..."}}}'
//
// Opens the mesh page, waits until every named node is listed online with its GPUs and models
// (each a substring to find) and prints {"listed": true, "rows": N}. Then answers one JSON command
// per stdin line with one JSON line:
//   {"open": ROUTE, "ready": TESTID}            -> {"opened": ROUTE, "rows": rows of TESTID's table}
//       (fails if the page shows an error instead)
//   {"wait": TESTID, "contains": TEXT}          -> {"seen": TEXT}   (the page changes by itself)
//   {"offline": NAME}                           -> {"offline": NAME, "state": ..., "judged_by": ..., "screenshot": PATH}
// Any failure prints the page's text and the browser's console errors to stderr and exits 1.
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const args = JSON.parse(process.argv[2]);
const WAIT_MS = args.wait_ms ?? 120_000;
const say = (value) => console.log(JSON.stringify(value));

const browser = await chromium.launch({ executablePath: args.chromium ?? "/usr/bin/chromium", args: ["--no-sandbox"] });
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
const consoleErrors = [];
page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));
page.on("pageerror", (e) => consoleErrors.push(String(e)));

async function fail(what, e) {
  const text = await page.locator("body").innerText().catch(() => "(no page)");
  console.error(`${what}: ${e?.message ?? e}\n--- page ---\n${text}\n--- console errors ---\n${consoleErrors.join("\n")}`);
  await page.screenshot({ path: args.screenshot, fullPage: true }).catch(() => {});
  await browser.close();
  process.exit(1);
}

const text = (testId) => page.getByTestId(testId).innerText();

try {
  await page.goto(args.url);
  for (const [name, want] of Object.entries(args.nodes)) {
    await page.waitForFunction(
      ([name, want]) => {
        const get = (id) => document.querySelector(`[data-testid="${id}"]`)?.textContent ?? "";
        return get(`state-${name}`) === "online" && get(`gpus-${name}`).includes(want.gpus) && get(`models-${name}`).includes(want.models);
      },
      [name, want],
      { timeout: WAIT_MS, polling: 500 },
    );
  }
  say({ listed: true, rows: await page.getByTestId("peer-table").locator("tbody tr").count() });
} catch (e) {
  await fail("the mesh page never listed every node", e);
}

async function open(route, ready) {
  await page.goto(`${args.url.split("#")[0]}#/${route}`);
  await page.waitForFunction(
    (ready) => document.querySelector(`[data-testid="${ready}"]`) || document.querySelector("main .error"),
    ready,
    { timeout: WAIT_MS, polling: 250 },
  );
  const error = await page.locator("main .error").first().innerText().catch(() => null);
  if (error) throw new Error(`the ${route} page shows an error: ${error}`);
  return { opened: route, rows: await page.getByTestId(ready).locator("tbody tr").count() };
}

async function waitFor(testId, contains) {
  await page.waitForFunction(
    ([testId, contains]) => (document.querySelector(`[data-testid="${testId}"]`)?.textContent ?? "").includes(contains),
    [testId, contains],
    { timeout: WAIT_MS, polling: 250 },
  );
  return { seen: contains };
}

async function offline(name) {
  await page.waitForFunction(
    (name) => document.querySelector(`[data-testid="state-${name}"]`)?.textContent === "offline",
    name,
    { timeout: WAIT_MS, polling: 500 },
  );
  await page.screenshot({ path: args.screenshot, fullPage: true });
  const judgedBy = await page.getByTestId(`state-${name}`).getAttribute("data-judged-by");
  return { offline: name, state: await text(`state-${name}`), judged_by: judgedBy, screenshot: args.screenshot };
}

for await (const line of createInterface({ input: process.stdin })) {
  const command = JSON.parse(line);
  try {
    if ("open" in command) say(await open(command.open, command.ready));
    else if ("wait" in command) say(await waitFor(command.wait, command.contains));
    else if ("offline" in command) {
      say(await offline(command.offline));
      break;
    } else throw new Error(`unknown command ${line}`);
  } catch (e) {
    await fail(`${line} failed`, e);
  }
}
await browser.close();
process.exit(0); // stdin stays open (the test holds it), which would keep node running
