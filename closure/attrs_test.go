package closure

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

const testAttrs = `{"builder":"/bin/bash","closure":[` +
	`{"closureSize":16,"narHash":"sha256:` + testHash + `","narSize":8,"path":"` + pA + `","references":["` + pA + `","` + pB + `"]},` +
	`{"closureSize":8,"narHash":"sha256:` + testHash + `","narSize":8,"path":"` + pB + `","references":[]}],` +
	`"exportReferencesGraph":{"closure":["` + pA + `"]},"name":"x"}`

const testLegacy = pA + "\n\n2\n" + pA + "\n" + pB + "\n" + pB + "\n\n0\n"

func TestParseAttrs(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		missing  bool
	}{
		{"structured", testAttrs, false},
		{"bare array", `[{"path":"` + pB + `","narHash":"` + b16 + `","narSize":8,"references":[]}]`, false},
		{"legacy", testLegacy, true},
	} {
		infos, missing, err := ParseAttrs(strings.NewReader(tc.in), "f", DefaultStoreDir)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if missing != tc.missing || infos[len(infos)-1].Path != pB {
			t.Errorf("%s: missing=%v infos=%+v", tc.name, missing, infos)
		}
	}
	infos, _, _ := ParseAttrs(strings.NewReader(testAttrs), "f", DefaultStoreDir)
	var buf bytes.Buffer
	WriteJSON(&buf, &Closure{StoreDir: DefaultStoreDir, Paths: infos})
	again, missing, err := ParseAttrs(&buf, "json", DefaultStoreDir)
	if err != nil || missing || len(again) != 2 || again[0].NarHash != infos[0].NarHash || len(again[0].References) != 2 {
		t.Errorf("WriteJSON round trip: %+v, %v", again, err)
	}
}

func TestParseAttrsErrors(t *testing.T) {
	item := func(fields string) string { return `{"closure":[` + fields + `]}` }
	h := `"narHash":"sha256:` + testHash + `"`
	for _, tc := range []struct {
		name, in string
		line     int
		want     string
	}{
		{"empty", "  \n", 0, "empty input"},
		{"syntax", "{\n\"closure\": [\n}", 3, "invalid JSON"},
		{"trailing garbage", `{"closure":[]} x`, 1, "after top-level value"},
		{"path not a string", "{\n\"closure\": [\n{\"path\": 1}]}", 3, "cannot unmarshal"},
		{"no closure key", `{"a":1}`, 0, "no exportReferencesGraph"},
		{"named key missing", `{"exportReferencesGraph":{"c":["x"]}}`, 0, `"c", which is missing`},
		{"missing path", item(`{` + h + `}`), 0, "missing path"},
		{"bad path", item(`{"path":"/nix/store/x",` + h + `}`), 0, "invalid store path"},
		{"missing hash", item(`{"path":"` + pB + `","narSize":1,"references":[]}`), 0, "missing narHash"},
		{"bad hash", item(`{"path":"` + pB + `","narHash":"sha256:x","narSize":1,"references":[]}`), 0, "invalid SHA-256"},
		{"missing size", item(`{"path":"` + pB + `",` + h + `,"references":[]}`), 0, "missing narSize"},
		{"negative size", item(`{"path":"` + pB + `",` + h + `,"narSize":-1,"references":[]}`), 1, "cannot unmarshal"},
		{"missing refs", item(`{"path":"` + pB + `",` + h + `,"narSize":1}`), 0, "missing references"},
		{"bad ref", item(`{"path":"` + pB + `",` + h + `,"narSize":1,"references":["/x"]}`), 0, "reference"},
		{"dangling ref", item(`{"path":"` + pB + `",` + h + `,"narSize":1,"references":["` + pA + `"]}`), 0, "not in the graph"},
		{"conflicting duplicate", item(`{"path":"` + pB + `",` + h + `,"narSize":1,"references":[]},{"path":"` + pB + `",` + h + `,"narSize":2,"references":[]}`), 0, "described twice"},
		{"legacy truncated", pA + "\n\n", 3, "truncated record"},
		{"legacy bad count", pA + "\n\nx\n", 3, "number expected"},
		{"legacy dangling", pA + "\n\n1\n" + pB + "\n", 4, "not in the graph"},
		{"legacy duplicate", pB + "\n\n0\n" + pB + "\n\n0\n", 4, "duplicate path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ParseAttrs(strings.NewReader(tc.in), "attrs.json", DefaultStoreDir)
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a *ParseError", err)
			}
			if pe.Line != tc.line || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "attrs.json:") {
				t.Errorf("err = %q (line %d), want line %d containing %q", err, pe.Line, tc.line, tc.want)
			}
		})
	}
}

func TestReadStorePaths(t *testing.T) {
	got, err := ReadStorePaths(strings.NewReader(pB+"\n"+pA+"\n"), "sp", DefaultStoreDir)
	if err != nil || len(got) != 2 || got[0] != pA {
		t.Errorf("ReadStorePaths = %v, %v", got, err)
	}
	for _, in := range []string{pA + "\n" + pA + "\n", "x\n", pA} {
		if _, err := ReadStorePaths(strings.NewReader(in), "sp", DefaultStoreDir); err == nil {
			t.Errorf("ReadStorePaths(%q) accepted", in)
		}
	}
}

func FuzzParseAttrs(f *testing.F) {
	f.Add(testAttrs)
	f.Add(testLegacy)
	f.Add(`[{"path":"` + pB + `","narHash":"` + b16 + `","narSize":8,"references":[]}]`)
	f.Fuzz(func(t *testing.T, in string) {
		infos, missing, err := ParseAttrs(strings.NewReader(in), "fuzz", DefaultStoreDir)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *ParseError", err)
			}
			return
		}
		g, err := NewGraph(DefaultStoreDir, "fuzz", infos)
		if err != nil {
			t.Fatalf("parsed graph is not closed: %v", err)
		}
		c, err := g.Resolve(nil)
		if err != nil {
			t.Fatal(err)
		}
		if missing {
			return
		}
		var buf bytes.Buffer
		WriteJSON(&buf, c)
		again, _, err := ParseAttrs(&buf, "again", DefaultStoreDir)
		if err != nil || len(again) != len(infos) {
			t.Fatalf("JSON round trip: %d paths, %v", len(again), err)
		}
	})
}

func TestScannerFindsHashParts(t *testing.T) {
	// Hash parts split across writes of every size are found; windows of
	// base-32 characters inside longer runs too, as Nix does.
	h1, h2 := strings.Repeat("1", 32), "3hqij8902382qfrkyh2qyy84m808d2w9"
	cands := map[string]string{h1: "/s/" + h1 + "-a", h2: "/s/" + h2 + "-b"}
	data := []byte("xx" + h2 + "zz/" + "000" + h1 + "000 e")
	for chunk := 1; chunk <= len(data); chunk++ {
		s := newRefScanner(cands)
		for i := 0; i < len(data); i += chunk {
			s.Write(data[i:min(i+chunk, len(data))])
		}
		if got := s.refs(); len(got) != 2 {
			t.Errorf("chunk %d: found %v", chunk, got)
		}
	}
	s := newRefScanner(cands)
	s.Write([]byte(h2[:31] + "e" + h2[1:]))
	if got := s.refs(); len(got) != 0 {
		t.Errorf("found %v in a broken hash", got)
	}
}
