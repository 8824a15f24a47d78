package style

import (
	"bufio"
	"os"
	"strings"
	"testing"
	"time"
)

type lintCase struct {
	name string
	text string
	// want is the fragment text[Start:End] of the one finding the rule
	// must give, or empty when the rule must stay silent.
	want string
	// sugg, when not empty, is the suggestion the finding must carry.
	sugg string
}

// checkRule lints each case and compares the findings of rule id.
func checkRule(t *testing.T, id string, cases []lintCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []Finding
			for _, f := range Lint(c.text) {
				if f.Rule == id {
					got = append(got, f)
				}
			}
			if c.want == "" {
				for _, f := range got {
					t.Errorf("Lint(%q): unexpected %s on %q: %s", c.text, id, c.text[f.Start:f.End], f.Message)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("Lint(%q): got %d %s findings %v, want 1 on %q", c.text, len(got), id, got, c.want)
			}
			f := got[0]
			if frag := c.text[f.Start:f.End]; frag != c.want {
				t.Errorf("Lint(%q): finding on %q, want %q", c.text, frag, c.want)
			}
			if c.sugg != "" && f.Suggestion != c.sugg {
				t.Errorf("Lint(%q): suggestion %q, want %q", c.text, f.Suggestion, c.sugg)
			}
			if f.Message == "" {
				t.Errorf("Lint(%q): empty message", c.text)
			}
		})
	}
}

func TestEmailCalque(t *testing.T) {
	checkRule(t, RuleEmailCalque, []lintCase{
		{"email finds you well", "Mam nadzieję, że ten e-mail zastanie Pana w dobrym zdrowiu.", "Mam nadzieję, że ten e-mail zastanie Pana w dobrym zdrowiu", ""},
		{"message finds you", "Mam nadzieję, że ta wiadomość zastanie Cię w dobrym nastroju!", "Mam nadzieję, że ta wiadomość zastanie Cię w dobrym nastroju", ""},
		{"dont hesitate", "Proszę, nie wahaj się skontaktować ze mną.", "nie wahaj się skontaktować", "W razie pytań proszę o kontakt"},
		{"dont hesitate formal", "Proszę się nie wahać i napisać.", "Proszę się nie wahać i napisać", ""},
		{"thank you for your time", "Dziękuję za Twój czas.", "Dziękuję za Twój czas", "Dziękuję za poświęcony czas"},
		{"have a great day", "Miej wspaniały dzień!", "Miej wspaniały dzień", "Miłego dnia"},
		{"paper letter formula", "Mam nadzieję, że list zastanie Cię w dobrym zdrowiu.", "", ""},
		{"hesitate alone", "Nie wahaj się, skacz!", "", ""},
		{"hesitate other verb", "Nie wahaj się zaryzykować.", "", ""},
		{"thanks for time spent", "Dziękuję za poświęcony czas.", "", ""},
		{"thanks for the time", "Dziękuję za czas, który mi Pan poświęcił.", "", ""},
		{"hope all is well", "Mam nadzieję, że u Pana wszystko w porządku.", "", ""},
		{"nice day", "Miłego dnia!", "", ""},
	})
}

func TestClosingComma(t *testing.T) {
	checkRule(t, RuleClosingComma, []lintCase{
		{"z poważaniem", "Dziękuję.\n\nZ poważaniem,\nJan", "Z poważaniem,", "Z poważaniem"},
		{"pozdrawiam", "Pozdrawiam,\nOla", "Pozdrawiam,", "Pozdrawiam"},
		{"pozdrawiam serdecznie", "Pozdrawiam serdecznie,\nOla", "Pozdrawiam serdecznie,", "Pozdrawiam serdecznie"},
		{"z wyrazami szacunku", "Z wyrazami szacunku,\r\nZarząd", "Z wyrazami szacunku,", ""},
		{"łączę pozdrowienia", "  Łączę pozdrowienia, \nAnna", "Łączę pozdrowienia,", "Łączę pozdrowienia"},
		{"no comma", "Z poważaniem\nJan", "", ""},
		{"in a sentence", "Pozdrawiam, jak zawsze, całą rodzinę.", "", ""},
		{"comma then name on the line", "Pozdrawiam, Jan", "", ""},
		{"inside a sentence", "Kończę list słowami z poważaniem, bo tak wypada.", "", ""},
	})
}

func TestGreetingCapital(t *testing.T) {
	checkRule(t, RuleGreetingCapital, []lintCase{
		{"szanowna pani", "Szanowna Pani,\nDziękuję za list.", "Dziękuję", "dziękuję"},
		{"blank line between", "Szanowny Panie,\n\nPiszę w sprawie faktury.", "Piszę", "piszę"},
		{"preposition", "Dzień dobry,\nW nawiązaniu do rozmowy przesyłam umowę.", "W", "w"},
		{"past tense", "Droga Aniu,\nDostałam Twój list.", "Dostałam", "dostałam"},
		{"cześć", "Cześć,\nMam pytanie.", "Mam", "mam"},
		{"lower case", "Szanowna Pani,\ndziękuję za list.", "", ""},
		{"exclamation", "Szanowna Pani!\nDziękuję za list.", "", ""},
		{"courtesy pronoun", "Szanowni Państwo,\nPaństwa wniosek został przyjęty.", "", ""},
		{"courtesy ty", "Drogi Marku,\nTwój list bardzo mnie ucieszył.", "", ""},
		{"proper name", "Szanowna Pani,\nMarek Nowak prosił, żebym napisał.", "", ""},
		{"first name", "Szanowna Pani,\nAgnieszka przekazała mi Pani numer.", "", ""},
		{"acronym", "Szanowni Państwo,\nPKO BP informuje o zmianie regulaminu.", "", ""},
		{"not a greeting", "Szanowna Pani Dyrektor poprosiła o raport.\nDziękuję wszystkim.", "", ""},
		{"drodzy", "Drodzy Koledzy,\nPrzypominam o zebraniu.", "Przypominam", "przypominam"},
		{"kochane", "Kochane Dziewczyny,\nDziękuję za życzenia.", "Dziękuję", "dziękuję"},
		{"dzień dobry wszystkim", "Dzień dobry wszystkim,\nZapraszam na spotkanie.", "Zapraszam", "zapraszam"},
		{"verse", "Drogi były kręte i puste,\nW oddali szczekał pies.", "", ""},
		{"comma inside", "Witaj, majowa jutrzenko,\nW blasku porannej zorzy.", "", ""},
	})
}

func TestQuotes(t *testing.T) {
	checkRule(t, RuleQuotes, []lintCase{
		{"straight", "Powiedział \"tak\" i wyszedł.", "\"tak\"", "„tak”"},
		{"curly english", "Film “Rejs” to klasyka.", "“Rejs”", "„Rejs”"},
		{"straight at line start", "\"Lalka\" to powieść Prusa.", "\"Lalka\"", "„Lalka”"},
		{"polish", "Powiedział „tak” i wyszedł.", "", ""},
		{"nested", "Odpowiedziała: „Czytałam »Lalkę«”.", "", ""},
		{"german style closing", "Powiedział „tak“ i wyszedł.", "", ""},
		{"inches", "Ekran ma 27\" przekątnej.", "", ""},
		{"inline code", "Uruchom `go test -run \"TestX\"` w katalogu.", "", ""},
		{"code block", "Przykład:\n```\nfmt.Println(\"Cześć\")\n```", "", ""},
		{"json", "Wpisz {\"imię\": \"Ala\"} do pliku.", "", ""},
		{"html attribute", "Dodaj <a href=\"x\">link</a> na stronie.", "", ""},
		{"english line", "He said \"hello\" and left.", "", ""},
		{"english inside curly", "Film “The Godfather of the year” to klasyka.", "", ""},
		{"english inside", "Opis: \"display the manual of a page\".", "", ""},
		{"english words around", "Zobacz \"in the beginning\" i \"Lalkę\".", "\"Lalkę\"", "„Lalkę”"},
		{"option", "Użyj opcji \"--force\" albo \"%s\".", "", ""},
		{"file name", "Otwórz plik \"Session.vim\" w edytorze.", "", ""},
		{"command", "Wpisz \":help\" w Vimie.", "", ""},
		{"url", "Zobacz https://example.com/?q=\"ala\" teraz.", "", ""},
	})
}

func TestDecimalPoint(t *testing.T) {
	checkRule(t, RuleDecimalPoint, []lintCase{
		{"kilograms", "Paczka waży 3.5 kg.", "3.5", "3,5"},
		{"percent", "Inflacja: 2.8%.", "2.8", "2,8"},
		{"złoty", "Bilet kosztuje 4.50 zł.", "4.50", "4,50"},
		{"million", "Miasto ma 1.8 mln mieszkańców.", "1.8", "1,8"},
		{"unit word", "To trwało 2.5 godziny.", "2.5", "2,5"},
		{"value verb", "Wskaźnik wynosi 0.75 w tym roku.", "0.75", "0,75"},
		{"value noun", "Średnia 4.25 to dobry wynik.", "4.25", "4,25"},
		{"value word far", "Wynosi ono 4.25 w skali.", "", ""},
		{"negative", "Było -3.5 °C.", "3.5", "3,5"},
		{"comma", "Paczka waży 3,5 kg.", "", ""},
		{"date", "Umowę podpisano 31.01.2024 r.", "", ""},
		{"day and month", "Wracam 15.03 wieczorem.", "", ""},
		{"time", "Pociąg odjeżdża o 14.30.", "", ""},
		{"time unit-like", "Zaczynamy o 9.45 w sali 3.", "", ""},
		{"version", "Python 3.12 jest szybszy.", "", ""},
		{"version prefix", "Wersja v3.5 kg", "", ""},
		{"version triple", "Wydano wersję 1.2.3 wczoraj.", "", ""},
		{"ip address", "Serwer 192.168.1.10 nie odpowiada.", "", ""},
		{"section", "Zobacz punkt 3.2 regulaminu.", "", ""},
		{"thousands", "Przyszło 1.500 osób.", "", ""},
		{"model name", "Model GPT-3.5 odpowiada szybko.", "", ""},
		{"ratio words", "Wynik 2.1 dla gospodarzy.", "", ""},
		{"code", "Ustaw `x = 3.5 kg` w pliku.", "", ""},
		{"abbreviation after section", "Punkt 3.2 m.in. opisuje zasady.", "", ""},
		{"page after section", "Zob. rozdział 2.3 s. 14 i dalej.", "", ""},
		{"unit at sentence end", "Dodaj 2.5 g. Potem wymieszaj.", "2.5", "2,5"},
		{"unit at text end", "Dodaj 2.5 g.", "2.5", "2,5"},
	})
}

func TestDateFormat(t *testing.T) {
	checkRule(t, RuleDateFormat, []lintCase{
		{"us", "Termin mija 01/31/2024.", "01/31/2024", "31.01.2024 r."},
		{"british", "Urodziła się 25/12/1990 r.", "25/12/1990", "25.12.1990"},
		{"ambiguous reads us", "Spotkanie 3/4/2024.", "3/4/2024", "04.03.2024 r."},
		{"month first", "Podpisano Styczeń 5, 2024.", "Styczeń 5, 2024", "5 stycznia 2024 r."},
		{"genitive month first", "Raport z marca 12, 2023 roku.", "marca 12, 2023", "12 marca 2023"},
		{"polish", "Podpisano 5 stycznia 2024 r.", "", ""},
		{"dotted", "Podpisano 05.01.2024 r.", "", ""},
		{"iso", "Data: 2024-01-31.", "", ""},
		{"roman month", "Urodzona 7 XI 1990 r.", "", ""},
		{"case number", "Sygnatura akt 12/2024 oraz nr 4512/2024.", "", ""},
		{"url path", "Zobacz example.org/2024/01/31/wpis.", "", ""},
		{"fraction", "Zużyto 1/2/3 zapasów.", "", ""},
		{"month then year", "W styczniu 2024 i w maju 2025 r.", "", ""},
		{"impossible", "Kod 45/67/2024.", "", ""},
	})
}

func TestTitleCase(t *testing.T) {
	checkRule(t, RuleTitleCase, []lintCase{
		{"markdown", "# Jak Napisać Dobry List Motywacyjny", "Jak Napisać Dobry List Motywacyjny", ""},
		{"preposition", "## Najlepsze Praktyki W Programowaniu\n\nTekst.", "Najlepsze Praktyki W Programowaniu", ""},
		{"standalone", "Wstęp.\n\nPrzewodnik Po Krakowie Dla Turystów\n\nKraków to miasto.", "Przewodnik Po Krakowie Dla Turystów", ""},
		{"sentence case", "# Jak napisać dobry list motywacyjny", "", ""},
		{"proper name", "# Stany Zjednoczone Ameryki", "", ""},
		{"roman numeral", "Bolesław I Chrobry\n\nKról Polski.", "", ""},
		{"institution", "## Uniwersytet Jagielloński w Krakowie", "", ""},
		{"academy", "Polska Akademia Nauk", "", ""},
		{"two words", "# Spis Treści", "", ""},
		{"sentence line", "Wstęp\n\nTo Jest Zdanie Po Prostu.\n\nDalej.", "", ""},
		{"list item", "- Przewodnik Po Krakowie Dla Turystów", "", ""},
		{"after colon", "# Poradnik: Jak napisać CV", "", ""},
		{"not alone", "Tekst przed\nPrzewodnik Po Krakowie Dla Turystów\nTekst po", "", ""},
		{"bold line", "Wstęp.\n\n**Plan Na Weekend W Górach**\n\nTekst.", "Plan Na Weekend W Górach", ""},
		{"bold sentence case", "Wstęp.\n\n**Plan na weekend w górach**\n\nTekst.", "", ""},
		{"bold inside", "Wstęp.\n\n**Plan** Na Weekend W **Górach**\n\nTekst.", "", ""},
		{"ellipsis", "Wstęp\n\nI Tak Dalej Na Zawsze…\n\nTekst.", "", ""},
		{"closing quote", "Wstęp\n\nTytuł Brzmiał „Jak Żyć”\n\nTekst.", "", ""},
		{"english title", "# Back To The Future", "", ""},
		{"english title without articles", "## Introduction To Go Modules", "", ""},
		{"polish with do", "# Wprowadzenie W Świat Języka Go", "Wprowadzenie W Świat Języka Go", ""},
		{"ambiguous do with polish letters", "# Przewodnik Do Źródeł Wiedzy", "Przewodnik Do Źródeł Wiedzy", ""},
	})
}

func TestOrdinal(t *testing.T) {
	checkRule(t, RuleOrdinal, []lintCase{
		{"place", "Zajął 5-te miejsce.", "5-te", "5."},
		{"decade", "To były lata 70-te.", "70-te", "70."},
		{"decade genitive", "W latach 90-tych.", "90-tych", "90."},
		{"date", "Przyjdź 2-go maja.", "2-go", "2"},
		{"floor", "Mieszkam na 3-cim piętrze.", "3-cim", "3."},
		{"first", "To jego 1-szy start.", "1-szy", "1."},
		{"period", "Zajął 5. miejsce.", "", ""},
		{"decade period", "Lata 70. były barwne.", "", ""},
		{"compound adjective", "Kupiłem 5-tonową ciężarówkę.", "", ""},
		{"range", "Strony 5-10 i 20-30.", "", ""},
		{"cardinal", "Spotkałem się z 3-ma osobami.", "", ""},
		{"identifier", "Model B-2-gi wyszedł.", "", ""},
		{"word", "Dzieci 10-latki.", "", ""},
	})
}

func TestMissingComma(t *testing.T) {
	checkRule(t, RuleMissingComma, []lintCase{
		{"że", "Myślę że masz rację.", " że", ", że"},
		{"który", "Człowiek który przyszedł.", " który", ", który"},
		{"ponieważ", "Nie przyszedłem ponieważ byłem chory.", " ponieważ", ", ponieważ"},
		{"żeby", "Uczę się żeby zdać.", " żeby", ", żeby"},
		{"aby", "Wyszedł wcześnie aby zdążyć.", " aby", ", aby"},
		{"gdyż", "Zostałem gdyż padało.", " gdyż", ", gdyż"},
		{"mimo że", "Przyszedł mimo że padało.", " mimo że", ", mimo że"},
		{"zwłaszcza że", "Zostań zwłaszcza że pada.", " zwłaszcza że", ", zwłaszcza że"},
		{"którzy", "Ludzie którzy tu mieszkają.", " którzy", ", którzy"},
		{"comma", "Myślę, że masz rację.", "", ""},
		{"after i", "Wiem, że przyjdzie i że przyniesie ciasto.", "", ""},
		{"after oraz", "Wiem, że wygra, oraz że nikt mu nie przeszkodzi.", "", ""},
		{"after lub", "Mówi, że przyjdzie lub że zadzwoni.", "", ""},
		{"sentence start", "Że też musiało padać!", "", ""},
		{"after full stop", "Tak. Że przyjdzie, wiedziałem.", "", ""},
		{"mimo że commaed", "Przyszedł, mimo że padało.", "", ""},
		{"chyba że", "Zostanę, chyba że zadzwonisz.", "", ""},
		{"tylko że", "Rozumiem, tylko że nie mogę.", "", ""},
		{"dlatego że", "Nie przyszedł dlatego, że był chory.", "", ""},
		{"dlatego że other", "Nie przyszedł, dlatego że był chory.", "", ""},
		{"to że", "To, że milczy, niczego nie dowodzi.", "", ""},
		{"o to że", "Chodzi o to, że nikt nie pytał.", "", ""},
		{"preposition", "Dom, w którym mieszkam.", "", ""},
		{"preposition phrase", "Sprawa, na podstawie której wydano decyzję.", "", ""},
		{"pod koniec", "To był rok, pod koniec którego wyjechał.", "", ""},
		{"z powodu", "Burza, z powodu której odwołano lot, minęła.", "", ""},
		{"po to żeby", "Przyszedłem po to, żeby pomóc.", "", ""},
		{"czy aby", "Czy aby na pewno?", "", ""},
		{"nie żeby", "Nie żeby mi zależało.", "", ""},
		{"prawie że", "Prawie że skończyłem.", "", ""},
		{"jako że", "Jako że była niedziela, sklepy były zamknięte.", "", ""},
		{"tak że", "Było ciepło, tak że zdjęliśmy kurtki.", "", ""},
		{"z tym że", "Poszło dobrze, z tym że pociąg się spóźnił.", "", ""},
		{"tym bardziej", "Tym bardziej że nikt nie pytał.", "", ""},
		{"którykolwiek", "Weź którykolwiek.", "", ""},
		{"interrogative", "Który to już raz?", "", ""},
		{"quoted", "Spójnik „że” zawsze poprzedza przecinek.", "", ""},
		{"line break", "Myślę\nże masz rację.", "", ""},
		{"capital", "JEST DOBRZE ŻE JESTEŚ", "", ""},
	})
}

// readCorpusLines returns the non-comment lines of a testdata file.
func readCorpusLines(t *testing.T, name string) []string {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := sc.Text(); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCorrectCorpus: pages of correct Polish, full of the traps each rule
// must step around, give no findings at all.
func TestCorrectCorpus(t *testing.T) {
	b, err := os.ReadFile("testdata/correct.txt")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	if n := CountWords(text); n < 800 {
		t.Fatalf("correct.txt has %d words; the corpus should be a few pages", n)
	}
	for _, f := range Lint(text) {
		line := 1 + strings.Count(text[:f.Start], "\n")
		t.Errorf("correct.txt:%d: %s on %q: %s", line, f.Rule, text[f.Start:f.End], f.Message)
	}
}

// TestIncorrectCorpus: each annotated line gives its rule and no other.
func TestIncorrectCorpus(t *testing.T) {
	seen := map[string]int{}
	known := map[string]bool{}
	for _, r := range Rules() {
		known[r.ID] = true
	}
	for i, l := range readCorpusLines(t, "testdata/incorrect.txt") {
		id, text, ok := strings.Cut(l, "\t")
		if !ok || !known[id] {
			t.Fatalf("incorrect.txt: entry %d: want RULE<TAB>text with a known rule, got %q", i+1, l)
		}
		text = strings.ReplaceAll(text, `\n`, "\n")
		fs := Lint(text)
		if len(fs) == 0 {
			t.Errorf("incorrect.txt: %q: no findings, want %s", text, id)
		}
		for _, f := range fs {
			if f.Rule != id {
				t.Errorf("incorrect.txt: %q: unexpected %s on %q", text, f.Rule, text[f.Start:f.End])
			}
		}
		seen[id]++
	}
	for id := range known {
		if seen[id] < 4 {
			t.Errorf("incorrect.txt: rule %s has %d examples, want at least 4", id, seen[id])
		}
	}
}

func TestRules(t *testing.T) {
	ids := map[string]bool{}
	for _, r := range Rules() {
		if r.ID == "" || r.Description == "" || ids[r.ID] {
			t.Errorf("bad or duplicate rule %+v", r)
		}
		ids[r.ID] = true
	}
	if len(ids) != 9 {
		t.Errorf("got %d rules, want 9", len(ids))
	}
}

func TestPer1000Words(t *testing.T) {
	tests := []struct {
		text string
		n    int
		want float64
	}{
		{"", 3, 0},
		{"jedno słowo", 1, 500},
		{"e-mail i 3,5 kg", 1, 250},
		{"Mam 12 345,67 zł.", 1, 250},
		{"zaz\u0307o\u0301łc\u0301 ge\u0328s\u0301la\u0328 jaz\u0301n\u0301", 3, 1000},
		{"  ...  ", 1, 0},
	}
	for _, tt := range tests {
		got := Per1000Words(make([]Finding, tt.n), tt.text)
		if got != tt.want {
			t.Errorf("Per1000Words(%d findings, %q) = %v, want %v", tt.n, tt.text, got, tt.want)
		}
	}
}

func TestLintSortedAndBounded(t *testing.T) {
	text := "Szanowna Pani,\nDziękuję. Myślę że 3.5 kg to \"dużo\".\n\nPozdrawiam,\nJan"
	fs := Lint(text)
	if len(fs) != 5 {
		t.Fatalf("got %d findings %v, want 5", len(fs), fs)
	}
	for i, f := range fs {
		if f.Start < 0 || f.End > len(text) || f.Start >= f.End {
			t.Errorf("finding %d out of bounds: %+v", i, f)
		}
		if i > 0 && fs[i-1].Start > f.Start {
			t.Errorf("findings not sorted at %d", i)
		}
	}
}

// TestLintLinear: inputs of about 50 KB built to make a careless scanner
// quadratic (seconds to minutes) still lint in a fraction of a second (a few
// seconds with -race on a loaded machine).
func TestLintLinear(t *testing.T) {
	inputs := map[string]string{
		"digit run":      strings.Repeat("1", 50_000) + "-ty.",
		"separators":     strings.Repeat("1.1/1-1, wynosi 2.5 kg ", 2_000),
		"quotes":         strings.Repeat("“a ", 15_000),
		"backticks":      strings.Repeat("`a\" ", 15_000),
		"greetings":      strings.Repeat("Szanowna Pani,\n\n", 3_000) + "Dziękuję.",
		"one long line":  strings.Repeat("że który ", 5_000),
		"headings":       strings.Repeat("# Jak Pisać Po Polsku\n", 2_000),
		"links and mail": strings.Repeat("https://a.pl/x a@b.pl www.c.pl ", 2_000),
	}
	for name, text := range inputs {
		start := time.Now()
		Lint(text)
		d := time.Since(start)
		t.Logf("%s: %v", name, d)
		if d > 10*time.Second {
			t.Errorf("%s: %d bytes took %v", name, len(text), d)
		}
	}
}

func FuzzLint(f *testing.F) {
	for _, s := range []string{
		"Szanowna Pani,\nDziękuję.", "3.5 kg", "01/31/2024", "Styczeń 5, 2024", "# Jak Napisać List Po Polsku",
		"Myślę że tak", "\"a\" “b”", "5-ty", "```\nx\n", "`a", "Pozdrawiam,", "\xff\xfe 3.5 zł", "ą" + "\n\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		fs := Lint(text)
		for _, x := range fs {
			if x.Start < 0 || x.End > len(text) || x.Start >= x.End {
				t.Fatalf("finding out of bounds: %+v for len %d", x, len(text))
			}
			if x.Rule == "" || x.Message == "" {
				t.Fatalf("finding without rule or message: %+v", x)
			}
		}
		if s := Per1000Words(fs, text); s < 0 {
			t.Fatalf("negative score %v", s)
		}
	})
}

// benchText is the correct corpus followed by every incorrect line: prose
// with and without findings.
func benchText(b *testing.B) string {
	data, err := os.ReadFile("testdata/correct.txt")
	if err != nil {
		b.Fatal(err)
	}
	bad, err := os.ReadFile("testdata/incorrect.txt")
	if err != nil {
		b.Fatal(err)
	}
	var sb strings.Builder
	sb.Write(data)
	for _, l := range strings.Split(string(bad), "\n") {
		if _, text, ok := strings.Cut(l, "\t"); ok {
			sb.WriteString("\n\n" + strings.ReplaceAll(text, `\n`, "\n"))
		}
	}
	return sb.String()
}

// BenchmarkLint reports words/s. BenchmarkCountWords, one pass over the same
// text, is the floor it is compared with in BENCHMARKS.md.
func BenchmarkLint(b *testing.B) {
	text := benchText(b)
	n := CountWords(text)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		Lint(text)
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "words/s")
}

func BenchmarkCountWords(b *testing.B) {
	text := benchText(b)
	n := CountWords(text)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		CountWords(text)
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "words/s")
}

// TestCodeAndLinksSkipped: a rule that would fire on the same text outside
// code or a link stays silent inside it.
func TestCodeAndLinksSkipped(t *testing.T) {
	tests := []struct{ text, want string }{
		{"Zająłem 5-te miejsce.", RuleOrdinal},
		{"Pobierz https://example.com/plik-5-te.zip dzisiaj.", ""},
		{"Pobierz HTTP://EXAMPLE.COM/5-te dzisiaj.", ""},
		{"Wejdź na www.example.com/5-te, proszę.", ""},
		{"Pisz na 5-te@example.com, proszę.", ""},
		{"Uruchom `plik-5-te` teraz.", ""},
		{"Przykład:\n```\nZająłem 5-te miejsce.\n```\n", ""},
		{"Przykład:\n\n    Zająłem 5-te miejsce.\n", ""},
		{"Niezamknięty `kod i 5-te miejsce.", RuleOrdinal},
		{"Adres www.example.com, a potem 5-te miejsce.", RuleOrdinal},
	}
	for _, tt := range tests {
		fs := Lint(tt.text)
		got := ""
		if len(fs) > 0 {
			got = fs[0].Rule
		}
		if len(fs) > 1 || got != tt.want {
			t.Errorf("Lint(%q) = %v, want one %q finding or none", tt.text, fs, tt.want)
		}
	}
}
