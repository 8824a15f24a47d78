package style

import (
	"regexp"
	"strings"
	"unicode/utf8"
)

// headingRe matches a Markdown ATX heading and captures its text.
var headingRe = regexp.MustCompile(`^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$`)

// listMarkerRe matches a list item's marker; list items are not titles.
var listMarkerRe = regexp.MustCompile(`^\s*(?:[-*+•]|[0-9]+[.)])\s`)

// titleFunctionWords are prepositions and conjunctions: capitalised inside
// a title they cannot be a proper name, which is what tells a Title Case
// calque from a name such as "Stany Zjednoczone Ameryki". "I" is left out:
// it is also a Roman numeral ("Bolesław I Chrobry").
var titleFunctionWords = set("w", "we", "z", "ze", "na", "od", "o", "po", "pod", "nad", "za", "przed", "przez", "przy", "bez", "dla",
	"u", "ku", "oraz", "lub", "albo", "czy", "ale", "jak", "jako", "że", "się", "nie", "czyli", "między", "wśród", "według", "dzięki")

// ambiguousTitleWords are Polish function words that are English words too
// ("Back To The Future"); they count only in a title with Polish letters.
var ambiguousTitleWords = set("do", "to", "a")

// notInfinitives end like infinitives but are nouns.
var notInfinitives = set("sieć", "płeć", "nić", "mać", "chęć", "pięć", "sześć", "dziewięć", "część", "śmierć", "maść", "pamięć", "uwięź")

func isInfinitive(lw string) bool {
	if notInfinitives[lw] || len([]rune(lw)) < 4 {
		return false
	}
	for _, s := range []string{"ać", "eć", "ić", "yć", "uć", "ąć"} {
		if strings.HasSuffix(lw, s) {
			return true
		}
	}
	return false
}

// titleText returns the title on a line, with its offset in the line, or
// ok false when the line is no title: a Markdown heading, or a short line
// standing alone between blank lines without final punctuation.
func titleText(lines []line, i int) (text string, off int, ok bool) {
	l := lines[i]
	if m := headingRe.FindStringSubmatchIndex(l.text); m != nil {
		return l.text[m[2]:m[3]], m[2], true
	}
	blank := func(j int) bool { return j < 0 || j >= len(lines) || strings.TrimSpace(lines[j].text) == "" }
	t := strings.TrimSpace(l.text)
	// A line in bold ("**Plan Na Weekend**") is a title the way models
	// write them.
	for _, mark := range []string{"**", "__"} {
		if inner, ok := strings.CutPrefix(t, mark); ok {
			if inner, ok = strings.CutSuffix(inner, mark); ok && !strings.Contains(inner, mark[:1]) {
				t = strings.TrimSpace(inner)
			}
		}
	}
	if t == "" || strings.ContainsAny(t, "[]|(){}<>=/\\*_%~\t") || strings.Contains(t, "  ") || !blank(i-1) || !blank(i+1) || listMarkerRe.MatchString(l.text) ||
		strings.ContainsRune(".,;:!?…\"”", lastRune(t)) || greetingRe.MatchString(l.text) || closingRe.MatchString(l.text) {
		return "", 0, false
	}
	return t, strings.Index(l.text, t), true
}

func findTitleCase(d *doc) []Finding {
	var out []Finding
	lines := d.prose()
	for i, l := range lines {
		text, off, ok := titleText(lines, i)
		if !ok {
			continue
		}
		ws := words(text, 0)
		var letters []word
		for _, w := range ws {
			if r, _ := utf8.DecodeRuneInString(w.text); r >= '0' && r <= '9' {
				continue
			}
			letters = append(letters, w)
		}
		if len(letters) < 3 || len(letters) > 12 || !looksPolish(text) {
			continue
		}
		upper, counted, evidence := 0, 0, false
		for k, w := range letters {
			// A word opening the title or following a colon or a full
			// stop starts with a capital anyway.
			if k == 0 || strings.ContainsAny(text[letters[k-1].end:w.start], ":.?!") || isAcronym(w.text) {
				continue
			}
			counted++
			if !isUpperInitial(w.text) {
				continue
			}
			upper++
			lw := strings.ToLower(w.text)
			if titleFunctionWords[lw] || isInfinitive(lw) || ambiguousTitleWords[lw] && strings.ContainsAny(text, polishLetters) {
				evidence = true
			}
		}
		if counted < 2 || upper*4 < counted*3 || !evidence {
			continue
		}
		out = append(out, Finding{
			Rule:    RuleTitleCase,
			Start:   l.start + off,
			End:     l.start + off + len(text),
			Message: "w polskich tytułach wielką literą pisze się tylko pierwszy wyraz i nazwy własne",
		})
	}
	return out
}

// conjunctions take a comma before them when they open a subordinate clause.
var conjunctions = set("że", "ponieważ", "gdyż", "żeby", "żebym", "żebyś", "żebyśmy", "żebyście", "aby", "abym", "abyś", "abyśmy", "abyście",
	"który", "która", "które", "którego", "której", "któremu", "którym", "którą", "których", "którymi", "którzy")

// noCommaBefore are words after which a conjunction needs no comma of its
// own: coordinating conjunctions ("i że"), the first halves of two-word
// conjunctions whose comma goes before the pair ("mimo że", "dlatego że"),
// particles that take the comma before themselves ("zwłaszcza że", "nawet
// żeby"), and prepositions and the tails of prepositional phrases before
// a relative pronoun ("w którym", "na podstawie której").
var noCommaBefore = set(
	"i", "oraz", "lub", "albo", "ani", "ni", "czy", "bądź", "tudzież", "a", "ale", "lecz", "zaś", "bo", "więc", "toteż", "natomiast",
	"mimo", "pomimo", "chyba", "tylko", "zwłaszcza", "szczególnie", "tyle", "dlatego", "jako", "tak", "to", "tym", "tego", "prawie",
	"niemal", "nieomal", "omal", "ledwie", "ledwo", "bardziej", "zamiast", "byle", "lada", "obojętnie", "nie", "co", "niż", "jak", "że",
	"właśnie", "głównie", "wszystkim", "częściowo", "również", "także", "też", "nawet", "jedynie", "wyłącznie", "pewnie", "może",
	"prawdopodobnie", "zapewne", "akurat", "dopiero", "właściwie", "raczej", "prostu", "przecież", "aż", "no", "choć", "chociaż",
	"skoro", "jeśli", "jeżeli", "gdy", "kiedy", "podczas", "raz", "razie", "oczywiście", "przykład", "jednak", "jednakże",
	"zatem", "przeto", "stąd", "tymczasem", "ponadto", "dodatkowo", "następnie", "wreszcie", "ostatecznie", "owszem", "otóż",
	"w", "we", "na", "z", "ze", "o", "do", "od", "ode", "dla", "przez", "przeze", "po", "pod", "pode", "nad", "nade", "za", "przed",
	"przede", "bez", "beze", "u", "przy", "ku", "między", "pomiędzy", "spomiędzy", "wśród", "pośród", "spośród", "dzięki", "według",
	"wedle", "wobec", "względem", "obok", "koło", "około", "wokół", "dookoła", "naokoło", "poprzez", "ponad", "poza", "spoza", "spod",
	"znad", "sprzed", "zza", "przeciw", "przeciwko", "wbrew", "naprzeciw", "naprzeciwko", "wzdłuż", "oprócz", "prócz", "wskutek",
	"blisko", "niedaleko", "wewnątrz", "powyżej", "poniżej", "odnośnie", "celem", "drogą", "rzecz", "wyniku", "podstawie", "pomocą",
	"pomocy", "użyciu", "ramach", "trakcie", "czasie", "celu", "skutek", "skutkiem", "sprawie", "sprawą", "przypadku", "zakresie", "związku",
	"imieniu", "drodze", "oparciu", "toku", "myśl", "formie", "postaci", "stosunku", "porównaniu", "odróżnieniu", "przeciwieństwie",
	"zależności", "obliczu", "obrębie", "pobliżu", "środku", "okresie", "względu", "strony", "stronie", "miejsce", "miejscu", "charakterze",
	"koniec", "końcu", "początku", "ciągu", "przeciągu", "imię", "cześć", "temat", "mocy", "granicach", "wzór", "kształt", "koszt",
	"korzyść", "niekorzyść", "podobieństwo", "udziałem", "wyjątkiem", "powodu", "racji", "tytułu", "okazji")

// pairedConjunctions take the comma before the pair: ", mimo że".
var pairedConjunctions = set("mimo", "pomimo", "zwłaszcza")

func findMissingCommas(d *doc) []Finding {
	var out []Finding
	for _, l := range d.prose() {
		ws := words(l.text, l.start)
		for k := 1; k < len(ws); k++ {
			w := ws[k]
			if !conjunctions[w.text] {
				continue
			}
			p := ws[k-1]
			if !onlySpaces(d.text[p.end:w.start]) || !isLetters(p.text) {
				continue
			}
			lp := strings.ToLower(p.text)
			if pairedConjunctions[lp] && w.text == "że" {
				if k < 2 {
					continue
				}
				pp := ws[k-2]
				if !onlySpaces(d.text[pp.end:p.start]) || !isLetters(pp.text) || noCommaBefore[strings.ToLower(pp.text)] {
					continue
				}
				out = append(out, commaFinding(d, pp.end, w.end, lp+" że"))
				continue
			}
			if noCommaBefore[lp] {
				continue
			}
			out = append(out, commaFinding(d, p.end, w.end, w.text))
		}
	}
	return out
}

func commaFinding(d *doc, start, end int, conj string) Finding {
	return Finding{
		Rule:       RuleMissingComma,
		Start:      start,
		End:        end,
		Message:    "przed „" + conj + "” otwierającym zdanie podrzędne stawia się przecinek",
		Suggestion: ", " + strings.TrimLeft(d.text[start:end], "  \t"),
	}
}

func onlySpaces(s string) bool {
	return s != "" && strings.Trim(s, "  \t") == ""
}

func isLetters(s string) bool {
	for _, r := range s {
		if !isWordRune(r) || (r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func lastRune(s string) rune {
	r, _ := utf8.DecodeLastRuneInString(s)
	return r
}
