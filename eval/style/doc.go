// Package style is a linter for Polish prose that flags negative linguistic
// transfer from English, the kind of error an instruction-tuned model makes
// when its Polish is translated English: e-mail formulas rendered word for
// word, the punctuation of English letters, English quotation marks,
// decimal points, English date formats, Title Case headings, "5-ty"-style
// ordinals and a missing comma before a subordinate clause.
//
// Lint returns Findings with a stable rule id (see Rules), byte offsets into
// the text, a Polish message and, where a mechanical fix exists, a
// Suggestion that replaces text[Start:End]. Per1000Words turns a count of
// findings into a score that compares answers of different length.
//
// The rules, with what each deliberately leaves alone:
//
//   - email-calque: "Mam nadzieję, że ten e-mail zastanie Pana w dobrym
//     zdrowiu", "Nie wahaj się skontaktować", "Dziękuję za Twój czas", "Miej
//     wspaniały dzień". Not "Nie wahaj się, skacz!", not a paper letter's
//     "list zastanie Cię w zdrowiu", not "Dziękuję za poświęcony czas".
//   - closing-comma: "Z poważaniem," or "Pozdrawiam," alone on a line.
//   - greeting-capital: "Szanowna Pani,\nDziękuję…". Only common
//     sentence openers and first-person verb forms are flagged, so a name,
//     an acronym or a courtesy pronoun ("Pan", "Twój") after the greeting is
//     not.
//   - quotes: “…” and "…" in Polish lines. Not in English lines, not around
//     placeholders, options, commands and file names ("%s", "--force",
//     "Session.vim"), not inches (27").
//   - decimal-point: 3.5 followed by a unit or currency (kg, %, zł, mln…) or
//     after "wynosi", "średnia" and the like. Dates (31.01.2024, 15.03),
//     times (14.30), versions (3.12, v2.0, 1.2.3), section numbers and IP
//     addresses have no unit and are left alone.
//   - date-format: 01/31/2024 and "Styczeń 5, 2024". ISO dates, 31.01.2024
//     and Roman-numeral months are correct Polish.
//   - title-case: a Markdown heading, a bold line or a short line standing
//     alone whose words are nearly all capitalised, with a capitalised
//     preposition, conjunction or infinitive among them ("Jak Napisać Dobry
//     List", "Przewodnik Po Krakowie"). Capitalised proper names ("Stany
//     Zjednoczone Ameryki", "Bolesław I Chrobry") have none and pass.
//   - ordinal-suffix: 5-ty, 70-te, 90-tych, 2-go (maja).
//   - missing-comma: że, który (all forms), ponieważ, gdyż, żeby, aby right
//     after a word with no comma. Not after coordinating conjunctions ("i
//     że"), not inside two-word conjunctions whose comma goes before the
//     pair ("mimo że", "chyba że", "dlatego że"; the pair itself is checked
//     for "mimo że", "pomimo że", "zwłaszcza że"), not after particles that
//     take the comma themselves ("tylko", "właśnie", "prawie że"), not after
//     prepositions and prepositional phrases ("w którym", "na podstawie
//     której").
//
// Text in Markdown code (fenced or indented blocks, `inline` spans), URLs
// and e-mail addresses is never checked.
//
// The linter prefers precision to recall: a rule that fires on correct
// Polish is a bug. The tests hold pages of correct Polish that must give no
// finding (testdata/correct.txt). The rules were also run over the 53,914
// Polish strings of Debian's translation catalogues and its Polish manual
// pages; the false alarms found there (printf verbs and commands in
// quotes, "%9.9s", "na przykład aby", "przy użyciu którego") shaped the
// exceptions above, and what remains are real errors, mostly straight
// quotation marks and missing commas. Lint runs in time
// linear in the text and is safe on any input, including invalid UTF-8.
// The package uses only the standard library.
package style
