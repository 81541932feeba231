// Package doctable keeps docs/bad-input.md true. The document's tables list bad inputs by id
// with the exact message a user sees; each package's test performs the cases of its ids and
// checks, through Check, that the message is still the documented one.
package doctable

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// File is the document, relative to the repository root.
const File = "docs/bad-input.md"

// Row is one documented case.
type Row struct {
	ID string
	// Message is what the user sees; <name> marks a part that varies (an address, a name).
	Message string
	Line    int
}

// Load reads the rows of every table in the document whose first cell is an id in backticks
// and whose last cell holds the message in backticks.
func Load(path string) (map[string]Row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	rows := map[string]Row{}
	s := bufio.NewScanner(f)
	for line := 1; s.Scan(); line++ {
		text := strings.TrimSpace(s.Text())
		if !strings.HasPrefix(text, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(text, "|"), " | ")
		if len(cells) < 2 {
			return nil, fmt.Errorf("%s:%d: a table row needs an id and a message", path, line)
		}
		id := strings.Trim(strings.TrimSpace(cells[0]), "`")
		msg := strings.TrimSpace(cells[len(cells)-1])
		if !strings.HasPrefix(msg, "`") || !strings.HasSuffix(msg, "`") || len(msg) < 2 {
			return nil, fmt.Errorf("%s:%d: the message of %s must be in backticks", path, line, id)
		}
		if prev, dup := rows[id]; dup {
			return nil, fmt.Errorf("%s:%d: id %s already used on line %d", path, line, id, prev.Line)
		}
		rows[id] = Row{ID: id, Message: strings.ReplaceAll(msg[1:len(msg)-1], `\|`, "|"), Line: line}
	}
	return rows, s.Err()
}

var placeholder = regexp.MustCompile(`<[a-zA-Z][^<>]*>`)

// Matches reports whether got contains want, each placeholder of want standing for any text.
func Matches(want, got string) bool {
	var b strings.Builder
	last := 0
	for _, loc := range placeholder.FindAllStringIndex(want, -1) {
		b.WriteString(regexp.QuoteMeta(want[last:loc[0]]))
		b.WriteString(".+?")
		last = loc[1]
	}
	b.WriteString(regexp.QuoteMeta(want[last:]))
	return regexp.MustCompile(b.String()).MatchString(got)
}

// Check runs the case of every documented id that starts with prefix and compares the message
// it produced with the document's. Documented ids without a case, and cases without a row,
// fail: the document and the tests must list the same cases.
func Check(t *testing.T, root, prefix string, cases map[string]func(t *testing.T) string) {
	t.Helper()
	rows, err := Load(filepath.Join(root, File))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for id := range rows {
		if strings.HasPrefix(id, prefix) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for id := range cases {
		if _, ok := rows[id]; !ok {
			t.Errorf("case %s is not documented in %s", id, File)
		}
	}
	for _, id := range ids {
		row := rows[id]
		t.Run(id, func(t *testing.T) {
			run, ok := cases[id]
			if !ok {
				t.Fatalf("%s:%d: no test performs %s", File, row.Line, id)
			}
			if got := run(t); !Matches(row.Message, got) {
				t.Fatalf("%s:%d: %s\ndocumented: %s\nactual:     %s", File, row.Line, id, row.Message, got)
			}
		})
	}
}
