package style

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// polishLetters tells Polish text from English in the quote rule.
const polishLetters = "ąćęłńóśźżĄĆĘŁŃÓŚŹŻ"

// polishFunctionWords are frequent Polish words that are not English words
// ("to", "do", "i" are both).
var polishFunctionWords = set("w", "z", "na", "jest", "nie", "jak", "czy", "oraz", "ale", "od", "dla", "przez", "tak", "jako", "ze", "we", "lub", "po", "ten", "ta", "te", "co")

// englishFunctionWords are frequent English words that are not Polish
// words.
var englishFunctionWords = set("the", "and", "of", "is", "are", "with", "that", "this", "you", "it", "for", "was", "were", "be", "been",
	"has", "have", "will", "would", "an", "or", "if", "he", "she", "they", "we", "said", "from", "by", "at", "his", "her", "in", "them", "its")

// looksPolish reports whether a line reads as Polish: a Polish letter, or
// no more English function words than Polish ones. English lines quoted in
// Polish text keep their English quotation marks.
func looksPolish(s string) bool {
	if strings.ContainsAny(s, polishLetters) {
		return true
	}
	pl, en := 0, 0
	for _, w := range words(s, 0) {
		lw := strings.ToLower(w.text)
		if polishFunctionWords[lw] {
			pl++
		}
		if englishFunctionWords[lw] {
			en++
		}
	}
	return en == 0 || pl > en
}

func isOpenContext(r rune) bool {
	return r == 0 || unicode.IsSpace(r) || strings.ContainsRune("([{–—-/", r)
}

func isCloseContext(r rune) bool {
	return r == 0 || unicode.IsSpace(r) || strings.ContainsRune(".,;:!?)]}…–—-", r)
}

func findQuotes(d *doc) []Finding {
	var out []Finding
	for _, l := range d.prose() {
		if !looksPolish(l.text) {
			continue
		}
		out = append(out, englishCurlyQuotes(l)...)
		out = append(out, straightQuotes(d, l)...)
	}
	return out
}

// englishCurlyQuotes finds “…” pairs around Polish text. Polish quotation marks close with the
// same ” that English ones close with; only the opening “ differs (and in
// the German-style „…“ the “ closes, which isOpenContext rules out).
func englishCurlyQuotes(l line) []Finding {
	var out []Finding
	s := l.text
	for i := 0; i < len(s); {
		j := strings.Index(s[i:], "“")
		if j < 0 {
			break
		}
		open := i + j
		i = open + len("“")
		if !isOpenContext(runeBefore(s, open)) || unicode.IsSpace(runeAt(s, i)) || runeAt(s, i) == 0 {
			continue
		}
		k := strings.IndexAny(s[i:], "”“")
		if k < 0 {
			continue
		}
		end := i + k
		if !strings.HasPrefix(s[end:], "”") || k == 0 || unicode.IsSpace(runeBefore(s, end)) {
			continue
		}
		inner := s[i:end]
		i = end + len("”")
		if !looksPolish(inner) {
			continue
		}
		out = append(out, Finding{
			Rule:       RuleQuotes,
			Start:      l.start + open,
			End:        l.start + end + len("”"),
			Message:    "angielski cudzysłów “…”; po polsku cudzysłów otwiera się na dole: „…”",
			Suggestion: "„" + inner + "”",
		})
	}
	return out
}

// straightQuotes finds "…" pairs around Polish text. A line with an odd number of
// straight quotes (inches, a stray mark) or with code-like characters is
// left alone.
func straightQuotes(d *doc, l line) []Finding {
	s := l.text
	if strings.ContainsAny(s, "{}=<>;\\") {
		return nil
	}
	var pos []int
	for i := 0; i < len(s); i++ {
		if s[i] == '"' && !d.excluded(l.start+i, l.start+i+1) {
			pos = append(pos, i)
		}
	}
	if len(pos) == 0 || len(pos)%2 != 0 {
		return nil
	}
	var out []Finding
	for p := 0; p < len(pos); p += 2 {
		open, end := pos[p], pos[p+1]
		inner := s[open+1 : end]
		if inner == "" || len(inner) > 300 ||
			!isOpenContext(runeBefore(s, open)) || !isCloseContext(runeAt(s, end+1)) ||
			unicode.IsSpace(runeAt(s, open+1)) || unicode.IsSpace(runeBefore(s, end)) ||
			!strings.ContainsFunc(inner, unicode.IsLetter) || looksLikeCode(inner) || !looksPolish(inner) {
			continue
		}
		out = append(out, Finding{
			Rule:       RuleQuotes,
			Start:      l.start + open,
			End:        l.start + end + 1,
			Message:    "prosty cudzysłów \"…\"; w polskim tekście cudzysłów to „…”",
			Suggestion: "„" + inner + "”",
		})
	}
	return out
}

// looksLikeCode reports whether quoted text is a placeholder, an option, a
// command or a file name ("%s", "--force", ":help", "Session.vim"), which
// technical prose quotes with straight marks on purpose.
func looksLikeCode(s string) bool {
	if strings.ContainsAny(s, "%$/\\\t") || strings.ContainsAny(s[:1], "-:+~.!") {
		return true
	}
	for i := 1; i+1 < len(s); i++ {
		if s[i] == '.' && isWordRune(runeBefore(s, i)) && isWordRune(runeAt(s, i+1)) {
			return true
		}
	}
	return false
}

var decimalRe = regexp.MustCompile(`^[0-9]+\.[0-9]+`)

// unitAfterRe matches a unit, currency or quantity word right after a
// number: only then is "3.5" surely a number and not a date (31.01), a time
// (14.30), a section (3.2) or a version (1.2).
var unitAfterRe = regexp.MustCompile(`^[  \x{202F}]?(?:%|‰|°[CF]?|zł|gr|PLN|EUR|USD|CHF|GBP|€|kg|dag|mg|g|t|km/h|km²|km|m²|m³|m|cm|mm|µm|nm|ha|ml|hl|l|h|min|ms|s|proc\.|procent\pL*|mln|mld|tys\.|tysi[ąę]c\pL*|milion\pL*|miliard\pL*|raz[ay]|litr\pL*|metr\pL*|kilometr\pL*|centymetr\pL*|milimetr\pL*|kilogram\pL*|gram\pL*|ton[ya]?|godzin\pL*|minut\pL*|sekund\pL*|roku|lat|miesi[ąę]c\pL*|tygodni\pL*|dnia|dni|stopni\pL*|punkt[uó]\pL*|pkt|GB|MB|TB|kB|GHz|MHz|Hz|kWh|kW|MW|W|V|mAh|cal[ai])(?:[^\pL\pN]|$)`)

// unitAfter reports whether rest starts with a unit. A one-letter unit
// followed by a full stop that does not end the sentence is an
// abbreviation instead: "3.2 m.in.", "2.3 s. 14" (a page).
func unitAfter(rest string) bool {
	m := unitAfterRe.FindStringIndex(rest)
	if m == nil {
		return false
	}
	unit := strings.TrimLeft(rest[:m[1]], "  \u202f")
	if len(unit) == 2 && unit[1] == '.' && isASCIILetter(unit[0]) {
		after := rest[m[1]:]
		next := runeAt(after, 0)
		if next != 0 && next != '\n' && !(next == ' ' && unicode.IsUpper(runeAt(after, 1))) {
			return false
		}
	}
	return true
}

func isASCIILetter(b byte) bool { return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' }

// valueWords are words after which a number is a value ("wynosi 3.5").
var valueWords = set("wynosi", "wynosił", "wynosiła", "wynosiło", "wyniósł", "wyniosła", "wyniosło", "wynoszą", "wynosiły",
	"średnia", "średnio", "ocena", "ocenę", "wskaźnik")

// followsValueWord reports whether the word right before byte i of t (one
// space away) is a value word.
func followsValueWord(t string, i int) bool {
	if r := runeBefore(t, i); r != ' ' && r != '\u00a0' {
		return false
	}
	from := max(0, i-24)
	ws := words(t[from:i], from)
	if len(ws) == 0 {
		return false
	}
	last := ws[len(ws)-1]
	return strings.TrimRight(t[last.end:i], " \u00a0") == "" && valueWords[strings.ToLower(last.text)]
}

func findDecimalPoints(d *doc) []Finding {
	var out []Finding
	t := d.text
	for _, m := range findAfterDigits(t, ".", decimalRe) {
		start, end := m[0], m[1]
		before := runeBefore(t, start)
		if unicode.IsLetter(before) || strings.ContainsRune("._/,'\\:#§%", before) {
			continue
		}
		if before == '-' && !isOpenContext(runeBefore(t, start-1)) {
			continue
		}
		if runeAt(t, end) == '.' && unicode.IsDigit(runeAt(t, end+1)) {
			continue // 1.2.3: a version, an address or a date
		}
		num := t[start:end]
		dot := strings.IndexByte(num, '.')
		ip, fp := num[:dot], num[dot+1:]
		if len(fp) == 3 && len(ip) <= 3 {
			// 1.500 may be a thousands separator, another mistake with
			// another fix.
			continue
		}
		if n, _ := strconv.Atoi(ip); n >= 1 && n <= 31 && len(fp) == 2 {
			if mo, _ := strconv.Atoi(fp); mo >= 1 && mo <= 12 {
				continue // 15.03: a day and a month
			}
		}
		if !unitAfter(t[end:]) && !followsValueWord(t, start) {
			continue
		}
		out = append(out, Finding{
			Rule:       RuleDecimalPoint,
			Start:      start,
			End:        end,
			Message:    "w polskim tekście część dziesiętną oddziela się przecinkiem",
			Suggestion: ip + "," + fp,
		})
	}
	return out
}

var slashDateRe = regexp.MustCompile(`^([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})`)

var monthGenitive = map[string]string{
	"styczeń": "stycznia", "luty": "lutego", "marzec": "marca", "kwiecień": "kwietnia", "maj": "maja", "czerwiec": "czerwca",
	"lipiec": "lipca", "sierpień": "sierpnia", "wrzesień": "września", "październik": "października", "listopad": "listopada", "grudzień": "grudnia",
}

// dayYearRe matches the "5, 2024" of "Styczeń 5, 2024"; the month before it
// is checked by findDateFormats (one small automaton is much faster than
// twenty-four month names tried at every byte).
var dayYearRe = regexp.MustCompile(`^([0-9]{1,2}), ([0-9]{4})`)

// yearMarked reports whether a date is already followed by "r." or "roku".
func yearMarked(rest string) bool {
	rest = strings.TrimLeft(rest, "  ")
	return strings.HasPrefix(rest, "r.") || strings.HasPrefix(rest, "roku")
}

func dateSuggestion(day, month int, year, rest string) string {
	s := fmt.Sprintf("%02d.%02d.%s", day, month, year)
	if !yearMarked(rest) {
		s += " r."
	}
	return s
}

func findDateFormats(d *doc) []Finding {
	var out []Finding
	t := d.text
	for _, m := range findAfterDigits(t, "/", slashDateRe) {
		start, end := m[0], m[1]
		if b := runeBefore(t, start); isWordRune(b) || strings.ContainsRune("/.-", b) {
			continue
		}
		if a := runeAt(t, end); isWordRune(a) || a == '/' {
			continue
		}
		a, _ := strconv.Atoi(t[m[2]:m[3]])
		b, _ := strconv.Atoi(t[m[4]:m[5]])
		year := t[m[6]:m[7]]
		if a < 1 || b < 1 || a > 31 || b > 31 || (a > 12 && b > 12) {
			continue
		}
		day, month, msg := b, a, "amerykański zapis daty (miesiąc/dzień/rok); po polsku: dzień.miesiąc.rok"
		if a > 12 {
			day, month, msg = a, b, "zapis daty z ukośnikami; po polsku: dzień.miesiąc.rok"
		}
		out = append(out, Finding{Rule: RuleDateFormat, Start: start, End: end, Message: msg, Suggestion: dateSuggestion(day, month, year, t[end:])})
	}
	for _, m := range findAfterDigits(t, ", ", dayYearRe) {
		end := m[1]
		if isWordRune(runeBefore(t, m[0])) || isWordRune(runeAt(t, end)) || runeBefore(t, m[0]) != ' ' {
			continue
		}
		prev := words(t[max(0, m[0]-40):m[0]-1], max(0, m[0]-40))
		if len(prev) == 0 || prev[len(prev)-1].end != m[0]-1 {
			continue
		}
		month := prev[len(prev)-1]
		mon := strings.ToLower(month.text)
		if g, ok := monthGenitive[mon]; ok {
			mon = g
		} else if !isGenitiveMonth(mon) {
			continue
		}
		start := month.start
		day, _ := strconv.Atoi(t[m[2]:m[3]])
		if day < 1 || day > 31 {
			continue
		}
		sugg := fmt.Sprintf("%d %s %s", day, mon, t[m[4]:m[5]])
		if !yearMarked(t[end:]) {
			sugg += " r."
		}
		out = append(out, Finding{
			Rule: RuleDateFormat, Start: start, End: end,
			Message:    "angielska kolejność w dacie (miesiąc dzień, rok); po polsku: dzień miesiąc rok",
			Suggestion: sugg,
		})
	}
	return out
}

var ordinalRe = regexp.MustCompile(`^[0-9]+-(?:tego|temu|tych|tej|tym|ty|ta|te|to|giego|giej|gich|gim|gie|gi|ga|go|ciego|ciej|cich|cim|cie|cia|ci|szego|szej|szych|szym|szy|sza|sze|mego|mej|mych|mym|my|ych|ego|ej|ym)`)

func findOrdinals(d *doc) []Finding {
	var out []Finding
	t := d.text
	for _, m := range findAfterDigits(t, "-", ordinalRe) {
		start, end := m[0], m[1]
		if b := runeBefore(t, start); isWordRune(b) || strings.ContainsRune("-./", b) {
			continue
		}
		if isWordRune(runeAt(t, end)) || runeAt(t, end) == '-' {
			continue
		}
		num := t[start : strings.IndexByte(t[start:], '-')+start]
		sugg := num + "."
		if nw := words(t[end:min(len(t), end+40)], 0); len(nw) > 0 {
			if _, isMonth := monthGenitive[strings.ToLower(nw[0].text)]; isMonth || isGenitiveMonth(nw[0].text) {
				sugg = num // "2-go maja" is "2 maja"
			}
		}
		out = append(out, Finding{
			Rule:       RuleOrdinal,
			Start:      start,
			End:        end,
			Message:    "liczebnik porządkowy zapisany cyframi arabskimi nie ma końcówki; stawia się po nim kropkę (5. miejsce, lata 70.)",
			Suggestion: sugg,
		})
	}
	return out
}

func isGenitiveMonth(w string) bool {
	lw := strings.ToLower(w)
	for _, g := range monthGenitive {
		if g == lw {
			return true
		}
	}
	return false
}

// findAfterDigits finds the matches of re (anchored with ^) that start in a
// run of ASCII digits directly before an occurrence of sep. Scanning for sep
// and trying re only there is many times faster than letting re try every
// byte of a long text. Matches do not overlap; each is a submatch index
// slice into t.
func findAfterDigits(t, sep string, re *regexp.Regexp) [][]int {
	const maxDigits = 16
	var out [][]int
	from := 0
	for {
		j := strings.Index(t[from:], sep)
		if j < 0 {
			return out
		}
		i := from + j
		from = i + len(sep)
		// Only the last few digits can start a match the rules accept (a
		// longer number is no date, ordinal or decimal of interest), and
		// the bound keeps a long digit run from costing quadratic time.
		k := i
		for k > 0 && k > i-maxDigits && t[k-1] >= '0' && t[k-1] <= '9' {
			k--
		}
		for start := k; start < i; start++ {
			m := re.FindStringSubmatchIndex(t[start:])
			if m == nil {
				continue
			}
			for x := range m {
				if m[x] >= 0 {
					m[x] += start
				}
			}
			out = append(out, m)
			from = max(from, m[1])
			break
		}
	}
}
