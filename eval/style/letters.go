package style

import (
	"regexp"
	"slices"
	"strings"
)

// calque is an English e-mail formula rendered word for word.
type calque struct {
	// keys are lower-case words of which one must occur in a line for re to
	// match there: a substring test is far cheaper than a case-folding
	// regexp. A formula is matched within one line.
	keys       []string
	re         *regexp.Regexp
	message    string
	suggestion string
}

// calques holds only formulas that have no native use: "Nie wahaj się" alone
// is good Polish, "Nie wahaj się skontaktować" is "don't hesitate to
// contact"; a paper letter may still "zastać kogoś w zdrowiu", an e-mail
// "finding you well" is the English formula.
var calques = []calque{
	{
		keys:       []string{"zastanie", "znajdzie"},
		re:         regexp.MustCompile(`(?i)mam nadziej[ęe],? że (?:ten |ta |to |niniejszy |niniejsza |mój |moja )?(?:e-?mail|mail|wiadomo[śs][ćc](?: e-?mail)?|list elektroniczny)(?: \pL+)? (?:zastanie|znajdzie) (?:\pL+ ){0,2}?(?:w (?:dobrym|dobrej|świetnym|znakomitym|doskonałym) (?:zdrowiu|nastroju|formie|humorze)|w zdrowiu|dobrze)`),
		message:    "kalka angielskiej formuły „I hope this e-mail finds you well”; po polsku nie zaczyna się tak wiadomości",
		suggestion: "Mam nadzieję, że wszystko u Pana/Pani w porządku",
	},
	{
		keys:       []string{"waha"},
		re:         regexp.MustCompile(`(?i)\b(?:nie wahaj(?:cie)? się|prosz[ęe] się nie waha[ćc]|niech (?:się )?(?:pan|pani|państwo) (?:się )?nie waha(?:ją)?) (?:i )?(?:skontaktowa[ćc]|kontaktowa[ćc]|napisa[ćc]|pisa[ćc]|zadzwoni[ćc]|dzwoni[ćc]|zapyta[ćc]|pyta[ćc]|da[ćc] znać|odezwa[ćc]|zwróci[ćc] się|zgłosi[ćc] się)`),
		message:    "kalka angielskiego „Don't hesitate to contact”; po polsku zaprasza się do kontaktu wprost",
		suggestion: "W razie pytań proszę o kontakt",
	},
	{
		keys:       []string{"czas"},
		re:         regexp.MustCompile(`(?i)\bdzięk(?:uję|ujemy|i) (?:bardzo |serdecznie )?za (?:twój|pana|pani|państwa|wasz|pański) (?:cenny )?czas\b`),
		message:    "kalka angielskiego „Thank you for your time”",
		suggestion: "Dziękuję za poświęcony czas",
	},
	{
		keys:       []string{"dzień"},
		re:         regexp.MustCompile(`(?i)\bmiej(?:cie)? (?:wspaniały|świetny|dobry|miły|piękny|cudowny|udany) dzień`),
		message:    "kalka angielskiego „Have a great day”",
		suggestion: "Miłego dnia",
	},
}

func findEmailCalques(d *doc) []Finding {
	var out []Finding
	for _, l := range d.prose() {
		lower := strings.ToLower(l.text)
		for _, c := range calques {
			if !slices.ContainsFunc(c.keys, func(k string) bool { return strings.Contains(lower, k) }) {
				continue
			}
			for _, m := range c.re.FindAllStringIndex(l.text, -1) {
				out = append(out, Finding{Rule: RuleEmailCalque, Start: l.start + m[0], End: l.start + m[1], Message: c.message, Suggestion: c.suggestion})
			}
		}
	}
	return out
}

// closingRe matches a closing formula alone on its line, followed by a
// comma: the English "Best regards," pattern.
var closingRe = regexp.MustCompile(`^\s*((?:Z|z) poważaniem|(?:Z|z) wyrazami (?:szacunku|poważania)|(?:Serdecznie |serdecznie )?(?:P|p)ozdrawiam(?: serdecznie| ciepło| gorąco)?|(?:Ł|ł)ączę (?:pozdrowienia|wyrazy szacunku|wyrazy poważania)|(?:Z|z) (?:serdecznymi |najlepszymi |ciepłymi )?pozdrowieniami|(?:Serdeczne|serdeczne) pozdrowienia)\s*(,)\s*$`)

func findClosingCommas(d *doc) []Finding {
	var out []Finding
	for _, l := range d.prose() {
		m := closingRe.FindStringSubmatchIndex(l.text)
		if m == nil {
			continue
		}
		out = append(out, Finding{
			Rule:       RuleClosingComma,
			Start:      l.start + m[2],
			End:        l.start + m[5],
			Message:    "po formule pożegnalnej w osobnym wierszu nie stawia się przecinka",
			Suggestion: l.text[m[2]:m[3]],
		})
	}
	return out
}

// greetingRe matches a salutation line that ends in a comma. After an
// adjective of address the next word must be capitalised ("Drogi Marku,",
// "Szanowni Państwo,"), so that a line of prose or verse that merely starts
// with "Drogi" or "Kochane" is not taken for a greeting.
var greetingRe = regexp.MustCompile(`^\s*(?:(?:(?:Wielce )?Szanown(?:y|a|i|e)|Drog(?:i|a|ie)|Drodzy|Kochan(?:y|a|i|e)|Najdroższ(?:y|a|e)|Najdrożsi)(?:,|\s+\p{Lu}[^.!?;:]{0,60},)|(?:Dzień dobry|Dobry wieczór|Witam|Witaj(?:cie)?|Cześć|Hej|Czołem)(?:,|\s[^.!?;:]{0,60},))\s*$`)

// courtesyWords are capitalised by courtesy in letters, so a capital on them
// after a greeting is right.
var courtesyWords = set("Pan", "Pana", "Panu", "Panem", "Panie", "Pani", "Panią", "Państwo", "Państwa", "Państwu", "Państwem",
	"Pański", "Pańska", "Pańskie", "Pańskiego", "Pańskiej", "Pańskim", "Pańską",
	"Ty", "Ciebie", "Cię", "Tobie", "Tobą", "Ci", "Twój", "Twoja", "Twoje", "Twojego", "Twojej", "Twoim", "Twoją", "Twoich", "Twoimi",
	"Wy", "Was", "Wam", "Wami", "Wasz", "Wasza", "Wasze", "Waszego", "Waszej", "Waszym", "Waszą", "Waszych")

// sentenceOpeners are common first words of a letter's body that are never
// proper names; only they (and the verb forms of looksLikeVerb) are flagged,
// so a name after the greeting ("Szanowna Pani,\nMarek prosił…") is not.
var sentenceOpeners = set(
	"w", "we", "z", "ze", "na", "po", "do", "od", "o", "u", "przy", "za", "pod", "przed", "nad", "bez", "dla", "przez", "wraz",
	"i", "a", "ale", "oraz", "jak", "czy", "co", "kiedy", "gdy", "jeśli", "jeżeli", "ponieważ", "skoro", "choć", "chociaż", "mimo", "pomimo", "zanim",
	"to", "ten", "ta", "te", "tym", "tak", "nie", "oto", "już", "jeszcze", "właśnie", "tu", "tutaj", "teraz",
	"wczoraj", "dziś", "dzisiaj", "jutro", "obecnie", "ostatnio", "niedawno", "wkrótce", "niestety", "ponadto", "zgodnie", "odnośnie", "uprzejmie",
	"serdecznie", "bardzo", "niniejszym", "jako", "dziękuję", "dziękujemy", "dzięki", "jestem", "jesteśmy", "mam", "mamy",
	"zwracam", "zwracamy", "piszę", "piszemy", "przesyłam", "przesyłamy", "załączam", "załączamy", "potwierdzam", "potwierdzamy",
	"przypominam", "przypominamy", "informuję", "informujemy", "pragnę", "pragniemy", "zapraszam", "zapraszamy", "przepraszam", "przepraszamy",
	"proszę", "prosimy", "otrzymałem", "otrzymałam", "otrzymaliśmy", "odpowiadając", "nawiązując", "dziękując", "korzystając",
	"mój", "moja", "moje", "nasz", "nasza", "nasze", "nasi", "chcę", "chcemy", "miło", "gratuluję", "gratulujemy", "cieszę", "cieszymy",
	"przekazuję", "przekazujemy", "szczerze", "krótko", "chyba", "może", "wszystko", "wszyscy", "dawno", "minął", "minęło", "jak",
	"uprzejmie", "zatem", "więc", "otóż", "cóż", "przykro", "wielkie", "ogromnie", "niezmiernie", "kontaktuję", "kontaktujemy", "pozwalam",
	"pozwalamy", "chciałbym", "chciałabym", "chcielibyśmy", "chciałem", "chciałam", "mogę", "możemy", "muszę", "musimy")

// verbSuffixes mark first-person verb forms ("dziękuję", "pisałem",
// "chcielibyśmy"), which no name has.
var verbSuffixes = []string{"uję", "ujemy", "łem", "łam", "liśmy", "łyśmy", "łbym", "łabym", "libyśmy", "łybyśmy", "śmy", "imy", "ymy", "amy"}

func looksLikeVerb(lw string) bool {
	for _, s := range verbSuffixes {
		if strings.HasSuffix(lw, s) && len(lw) > len(s)+1 {
			return true
		}
	}
	return false
}

func findGreetingCapitals(d *doc) []Finding {
	var out []Finding
	lines := d.prose()
	for i, l := range lines {
		if !greetingRe.MatchString(l.text) {
			continue
		}
		// The body may follow a blank line; the comma still binds it.
		j := i + 1
		for j < len(lines) && strings.TrimSpace(lines[j].text) == "" {
			j++
		}
		if j == len(lines) {
			continue
		}
		ws := words(lines[j].text, lines[j].start)
		if len(ws) == 0 {
			continue
		}
		w := ws[0]
		// The word must open the line (no quote, dash or list marker).
		if strings.TrimLeft(d.text[lines[j].start:w.start], " \t") != "" {
			continue
		}
		if !isUpperInitial(w.text) || isAcronym(w.text) || courtesyWords[w.text] {
			continue
		}
		lw := strings.ToLower(w.text)
		if !sentenceOpeners[lw] && !looksLikeVerb(lw) {
			continue
		}
		out = append(out, Finding{
			Rule:       RuleGreetingCapital,
			Start:      w.start,
			End:        w.end,
			Message:    "po powitaniu zakończonym przecinkiem tekst listu zaczyna się małą literą",
			Suggestion: lowerFirst(w.text),
		})
	}
	return out
}
