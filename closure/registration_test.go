package closure

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
)

const (
	pA  = "/nix/store/3hqij8902382qfrkyh2qyy84m808d2w9-a"
	pB  = "/nix/store/b1x1pn9p68787dy03qrxlgyv7i6rixr4-b"
	pD  = "/nix/store/b1x1pn9p68787dy03qrxlgyv7i6rixr4-b.drv"
	b16 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

// testRegistration is closureInfo-style: a refers to itself and b.
var testRegistration = pA + "\nsha256:" + testHash + "\n120\n\n2\n" + pA + "\n" + pB + "\n" +
	pB + "\nsha256:" + testHash + "\n8\n\n0\n"

func TestRegistrationRoundTrip(t *testing.T) {
	infos, err := ParseRegistration(strings.NewReader(testRegistration), "reg", DefaultStoreDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 2 || infos[0].Path != pA || infos[1].Path != pB ||
		len(infos[0].References) != 2 || infos[0].NarSize != 120 || infos[1].References != nil {
		t.Fatalf("parsed %+v", infos)
	}
	c := &Closure{StoreDir: DefaultStoreDir, Paths: infos}
	var buf bytes.Buffer
	if err := WriteRegistration(&buf, c); err != nil {
		t.Fatal(err)
	}
	if buf.String() != testRegistration {
		t.Errorf("WriteRegistration:\n%s\nwant\n%s", buf.String(), testRegistration)
	}
	buf.Reset()
	c.Paths[0].Deriver = pD
	WriteDumpDB(&buf, c)
	want := pA + "\n" + b16 + "\n120\n" + pD + "\n2\n" + pA + "\n" + pB + "\n" + pB + "\n" + b16 + "\n8\n\n0\n"
	if buf.String() != want {
		t.Errorf("WriteDumpDB:\n%s\nwant\n%s", buf.String(), want)
	}
	// The dump-db form reads back to the same infos.
	again, err := ParseRegistration(&buf, "dump", DefaultStoreDir)
	if err != nil || len(again) != 2 || again[0].Deriver != pD || again[0].NarHash != infos[0].NarHash {
		t.Errorf("re-parse dump-db: %+v, %v", again, err)
	}
	buf.Reset()
	WriteStorePaths(&buf, c)
	if buf.String() != pA+"\n"+pB+"\n" {
		t.Errorf("store-paths = %q", buf.String())
	}
	buf.Reset()
	WriteTotalNarSize(&buf, c)
	if buf.String() != "128\n" {
		t.Errorf("total-nar-size = %q", buf.String())
	}
}

func TestParseRegistrationErrors(t *testing.T) {
	rec := func(path, hash, size, deriver, n string, refs ...string) string {
		s := path + "\n" + hash + "\n" + size + "\n" + deriver + "\n" + n + "\n"
		for _, r := range refs {
			s += r + "\n"
		}
		return s
	}
	h := "sha256:" + testHash
	good := rec(pB, h, "8", "", "0")
	for _, tc := range []struct {
		name, in string
		line     int
		want     string
	}{
		{"truncated after path", pA + "\n", 2, "truncated record"},
		{"truncated after hash", pA + "\n" + h + "\n", 3, "truncated record"},
		{"truncated refs", rec(pA, h, "1", "", "2", pB), 7, "truncated record"},
		{"no final newline", strings.TrimSuffix(good, "\n"), 5, "does not end with a newline"},
		{"bad size", rec(pA, h, "12x", "", "0"), 3, "number expected"},
		{"negative size", rec(pA, h, "-1", "", "0"), 3, "number expected"},
		{"huge size", rec(pA, h, "99999999999999999999", "", "0"), 3, "out of range"},
		{"bad count", rec(pA, h, "1", "", ""), 5, "number expected"},
		{"huge count", rec(pA, h, "1", "", "4294967296"), 5, "out of range"},
		{"bad hash", rec(pA, "sha256:xyz", "1", "", "0"), 2, "invalid SHA-256 hash"},
		{"md5 hash", rec(pA, "md5:"+testHash, "1", "", "0"), 2, "hash type"},
		{"invalid path", rec("/nix/store/foo", h, "1", "", "0"), 1, "invalid store path"},
		{"path in other store", rec("/gnu/store/3hqij8902382qfrkyh2qyy84m808d2w9-a", h, "1", "", "0"), 1, "not directly in the store"},
		{"invalid deriver", rec(pA, h, "1", "x.drv", "0"), 4, "deriver"},
		{"invalid reference", rec(pA, h, "1", "", "1", "/nix/store/x"), 6, "reference of"},
		{"reference outside", rec(pA, h, "1", "", "1", pB), 6, "not in the registration"},
		{"duplicate path", good + good, 6, "duplicate path"},
		{"blank line", good + "\n", 6, "invalid store path"},
		{"crlf", strings.ReplaceAll(good, "\n", "\r\n"), 1, "invalid store path"},
		{"long line", strings.Repeat("x", maxLineLen+10) + "\n", 1, "line longer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRegistration(strings.NewReader(tc.in), "reg", DefaultStoreDir)
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a *ParseError", err)
			}
			if pe.File != "reg" || pe.Line != tc.line || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %q (line %d), want line %d containing %q", err, pe.Line, tc.line, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "reg:") {
				t.Errorf("err = %q does not start with the file name", err)
			}
		})
	}
}

func TestParseRegistrationAccepts(t *testing.T) {
	for _, h := range []string{
		testHash, "sha256:" + testHash, b16, "sha256:" + b16,
		"sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
		"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
	} {
		in := pB + "\n" + h + "\n0\n" + pD + "\n1\n" + pB + "\n"
		infos, err := ParseRegistration(strings.NewReader(in), "reg", DefaultStoreDir)
		if err != nil {
			t.Errorf("hash %s: %v", h, err)
			continue
		}
		if FormatHash(infos[0].NarHash, HashBase32, false) != testHash {
			t.Errorf("hash %s parsed to %x", h, infos[0].NarHash)
		}
	}
	// Empty input is an empty registration.
	if infos, err := ParseRegistration(strings.NewReader(""), "reg", DefaultStoreDir); err != nil || len(infos) != 0 {
		t.Errorf("empty: %v, %v", infos, err)
	}
	// ParseRegistrationOpen takes a reference to a path it does not
	// describe, which ParseRegistration refuses.
	open := pB + "\n" + testHash + "\n0\n\n1\n" + pD + "\n"
	if _, err := ParseRegistration(strings.NewReader(open), "reg", DefaultStoreDir); err == nil {
		t.Error("ParseRegistration took a reference outside the registration")
	}
	if infos, err := ParseRegistrationOpen(strings.NewReader(open), "reg", DefaultStoreDir); err != nil || len(infos) != 1 || !slices.Equal(infos[0].References, []string{pD}) {
		t.Errorf("ParseRegistrationOpen: %+v, %v", infos, err)
	}
}

func FuzzParseRegistration(f *testing.F) {
	f.Add(testRegistration)
	f.Add(pA + "\n" + b16 + "\n120\n" + pD + "\n1\n" + pA + "\n")
	f.Add(pA + "\nsha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n0\n\n0\n")
	f.Add(pA + "\n\n\n\n\n")
	f.Fuzz(func(t *testing.T, in string) {
		infos, err := ParseRegistration(strings.NewReader(in), "fuzz", DefaultStoreDir)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *ParseError", err)
			}
			return
		}
		// What parses must survive a write and re-parse unchanged.
		var buf bytes.Buffer
		c := &Closure{StoreDir: DefaultStoreDir, Paths: infos}
		if err := WriteDumpDB(&buf, c); err != nil {
			t.Fatal(err)
		}
		again, err := ParseRegistration(&buf, "again", DefaultStoreDir)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if len(again) != len(infos) {
			t.Fatalf("re-parse gave %d paths, want %d", len(again), len(infos))
		}
		for i := range infos {
			a, b := infos[i], again[i]
			if a.Path != b.Path || a.NarHash != b.NarHash || a.NarSize != b.NarSize || a.Deriver != b.Deriver ||
				strings.Join(a.References, " ") != strings.Join(b.References, " ") {
				t.Fatalf("re-parse differs: %+v vs %+v", a, b)
			}
		}
	})
}

func FuzzParseStorePath(f *testing.F) {
	f.Add(pA)
	f.Add(pD)
	f.Add("/nix/store/" + strings.Repeat("0", 32) + "-" + strings.Repeat("x", 211))
	f.Add("/nix/store/.foo")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseStorePath(DefaultStoreDir, s)
		if err != nil {
			if !errors.Is(err, ErrBadStorePath) {
				t.Fatalf("error %v is not ErrBadStorePath", err)
			}
			return
		}
		if p.String() != s {
			t.Fatalf("String() = %q, want %q", p.String(), s)
		}
		if len(p.Name) > MaxNameLen || p.Name[0] == '.' {
			t.Fatalf("accepted bad name %q", p.Name)
		}
		if _, err := DecodeBase32(p.Hash, 20); err != nil {
			t.Fatalf("accepted hash part %q: %v", p.Hash, err)
		}
		if sp, err := ToStorePath(DefaultStoreDir, s+"/sub/dir"); err != nil || sp != s {
			t.Fatalf("ToStorePath(%q/sub/dir) = %q, %v", s, sp, err)
		}
	})
}
