// Package eval evaluates language models on Polish tasks: PLCC-style open
// questions, multiple choice (LLMzSzŁ), false refusals and verbosity, and
// summarises the results for reports. The package itself needs no libtorch:
// models come in through the small Model interface, served over HTTP by
// eval/openai or in process by a backend that lives in its own subpackage.
//
// # Model
//
// A Model answers two kinds of requests, both batched: the log-likelihood of a
// continuation given a context (multiple choice), and generation from a chat or
// a raw prompt with stop sequences, a token limit, a temperature and a seed.
//
// # Task files
//
// Every task is a JSONL file, one item per line; blank lines are skipped. The
// kind of a file is detected from the fields of its first item, or forced by
// the caller (ReadTaskFile with a Kind, or "kind=FILE" on the command line).
//
//   - open questions, PLCC-style (KindOpenQA):
//     {"id": "geo-001", "category": "geography", "question": "…",
//     "answers": ["Wisła"], "regex": ["(?i)\\bwisł"]}
//     category is one of "art & entertainment", "culture & tradition",
//     "geography", "grammar", "history", "vocab"; regex is optional.
//   - multiple choice, the LLMzSzŁ format (KindMultipleChoice):
//     {"id": "…", "question": "…", "answers": ["…", "…"],
//     "correct_answer_index": 1, "type": "…", "name": "…", "year": 2020}
//     id is optional (the line number stands in).
//   - refusals (KindRefusal):
//     {"id": "…", "prompt": "…", "harmful": false, "category": "…"}
//   - verbosity (KindVerbosity):
//     {"id": "…", "prompt": "…", "reference": "…"}
//     the reference answer's length is the yardstick.
//
// # Scoring
//
// Open answers are normalised (Normalize) before matching: a leading
// "Odpowiedź:", "Answer:" and the like is dropped, text is lower-cased,
// quotation marks and punctuation removed, white space collapsed and, when
// asked, Polish diacritics folded. An answer counts when a normalised accepted
// answer equals the normalised response or, in the default contains mode,
// appears in it as whole words, or when one of the regular expressions matches
// the response. Multiple choice is scored as lm-evaluation-harness does: acc is
// the argmax of the continuations' log-likelihoods (each continuation preceded
// by the target delimiter " "), acc_norm the argmax after dividing each by the
// continuation's length in characters; the generative mode extracts the letter
// (ExtractChoice). Refusals are recognised by DetectRefusal, a documented list
// of Polish and English phrases (precision first). Verbosity reports
// characters, words and, given a counter, tokens: mean, median and 90th
// percentile, and their ratio to the reference answers. A leading reasoning
// block ("<think>…</think>") is dropped before any generated answer is
// scored (StripReasoning). Refusal rates are also given per prompt category,
// multiple-choice accuracy per subject ("name"), and, given a finding
// counter such as eval/style's linter, a style score in findings per 1,000
// words of generated prose.
//
// # lm-evaluation-harness tasks
//
// The Open PL LLM Leaderboard's Polish tasks (KindHarness) are carried as
// HarnessTask values transcribed from the task YAMLs of speakleash's fork of
// lm-evaluation-harness (HarnessTaskByName, HarnessTaskNames), plus
// upstream's belebele_pol_Latn. Their documents come from the datasets' own
// files (ReadDocs: JSONL, a JSON array, CSV or TSV with a header);
// BuildHarness renders each document's context (few-shot examples
// included, drawn as the harness draws them) and target. Multiple-choice
// tasks ask one log-likelihood per choice, generative ones a greedy
// completion of the raw prompt cut at the task's until strings and passed
// through its regex filter; the metrics are the harness's: acc, acc_norm,
// exact_match and F1.
//
// # Uncertainty
//
// Every metric carries its standard error as the harness computes it:
// MeanStderr for means, BootstrapStderr for F1 and ratios. Results keep each
// item's part in every metric (ItemResult.Scores, Gold/Pred), so CompareAt
// can pair two runs item by item and call a difference better or worse only
// when a paired test is significant: McNemar for accuracies and rates,
// PairedBootstrap for the rest.
//
// # Runs
//
// Run evaluates tasks with bounded concurrency and keeps the model's raw
// outputs in a JSONL cache keyed by task, item, model and generation settings,
// so an interrupted run resumes without asking for answered items again.
// Scores are always recomputed from the cached outputs.
package eval
