package register

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/closurefs/closurefs/closure"
)

func TestCmdlineParams(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"  \n", nil},
		{"console=ttyS0 regInfo=/nix/store/x-closure-info/registration\n", []string{"console=ttyS0", "regInfo=/nix/store/x-closure-info/registration"}},
		{`a "b c" d="e f"  g`, []string{"a", "b c", "d=e f", "g"}},
		{`x="" y`, []string{"x=", "y"}},
		{"a\tb", []string{"a", "b"}},
	}
	for _, tt := range tests {
		if got := CmdlineParams(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("CmdlineParams(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRegInfoFromCmdline(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		cmdline string
		want    string
		err     string
	}{
		{"BOOT_IMAGE=/k init=/init regInfo=/nix/store/abc-closure-info/registration quiet\n", "/nix/store/abc-closure-info/registration", ""},
		{"regInfo=/first regInfo=/second\n", "/second", ""},
		{"console=ttyS0 quiet\n", "", "no regInfo= parameter"},
		{"regInfo= quiet\n", "", "regInfo= is empty"},
		{`regInfo="/with space/reg"`, "/with space/reg", ""},
	}
	for i, tt := range tests {
		f := filepath.Join(dir, "cmdline")
		os.WriteFile(f, []byte(tt.cmdline), 0o644)
		got, err := RegInfoFromCmdline(f)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), f) {
				t.Errorf("%d: error %v, want one naming %s and containing %q", i, err, f, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%d: got %q, %v; want %q", i, got, err, tt.want)
		}
	}
	if _, err := RegInfoFromCmdline(filepath.Join(dir, "absent")); err == nil {
		t.Error("a missing command line file gave no error")
	}
	big := filepath.Join(dir, "big")
	os.WriteFile(big, make([]byte, maxCmdline+10), 0o644)
	if _, err := RegInfoFromCmdline(big); err == nil {
		t.Error("a huge command line was accepted")
	}
	if _, err := RegInfoFromCmdline(big); errors.Is(err, ErrNoRegInfo) {
		t.Error("a huge command line reported as lacking regInfo")
	}
}

func TestMissing(t *testing.T) {
	dir := t.TempDir()
	a := "0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a-a"
	b := "1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b-b"
	os.WriteFile(filepath.Join(dir, a), nil, 0o444)
	got, err := Missing(dir, []closure.PathInfo{{Path: "/nix/store/" + a}, {Path: "/nix/store/" + b}})
	if err != nil || !slices.Equal(got, []string{"/nix/store/" + b}) {
		t.Errorf("Missing = %q, %v", got, err)
	}
}

func TestNixStoreMissing(t *testing.T) {
	nix := &Nix{NixStore: filepath.Join(t.TempDir(), "no-nix-store")}
	_, err := Register(context.Background(), nix, "/nix/store", []closure.PathInfo{{Path: "/nix/store/0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a-a"}})
	if err == nil || !strings.Contains(err.Error(), "nix-store not found") {
		t.Errorf("error %v", err)
	}
}

func TestLoadDBFailurePassedOn(t *testing.T) {
	// A fake nix-store: every path invalid, load-db fails with a message.
	dir := t.TempDir()
	prog := filepath.Join(dir, "nix-store")
	script := "#!/bin/sh\ncase \"$1\" in\n--check-validity) shift 2; for p; do echo \"$p\"; done;;\n--load-db) cat >/dev/null; echo 'error: database is locked' >&2; exit 1;;\nesac\n"
	if err := os.WriteFile(prog, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	nix := &Nix{NixStore: prog}
	_, err := Register(context.Background(), nix, "/nix/store", []closure.PathInfo{{Path: "/nix/store/0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a-a", NarSize: 8}})
	if err == nil || !strings.Contains(err.Error(), "error: database is locked") || !strings.Contains(err.Error(), "--load-db") {
		t.Errorf("error %v", err)
	}
}

func FuzzCmdlineParams(f *testing.F) {
	f.Add("console=ttyS0 regInfo=/nix/store/x-closure-info/registration quiet\n")
	f.Add(`a "b c" d="e f"  g`)
	f.Add(`"unterminated quote regInfo=/x`)
	f.Add("\x00\t\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		params := CmdlineParams(s)
		for _, p := range params {
			if strings.ContainsAny(p, "\"") {
				t.Errorf("parameter %q keeps a quote", p)
			}
			if len(p) > len(s) {
				t.Errorf("parameter %q longer than the input", p)
			}
		}
		// Without quotes, splitting is plain field splitting.
		ascii := true
		for i := 0; i < len(s); i++ {
			ascii = ascii && s[i] < 0x80
		}
		if ascii && !strings.ContainsAny(s, "\"\x00") {
			if want := strings.Fields(s); !slices.Equal(params, want) && !(len(params) == 0 && len(want) == 0) {
				t.Errorf("CmdlineParams(%q) = %q, want %q", s, params, want)
			}
		}
	})
}
