package main

import (
	"strings"
	"testing"
)

// TestUsage checks help in all its spellings, and flag combinations that
// are refused before any work.
func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string // in stdout for code 0, in stderr otherwise
	}{
		{[]string{"help"}, 0, "closurefs puts Nix closures"},
		{[]string{"--help"}, 0, "closurefs puts Nix closures"},
		{[]string{"help", "--help"}, 0, "closurefs puts Nix closures"},
		{[]string{"help", "help"}, 0, "closurefs puts Nix closures"},
		{[]string{"-h", "help"}, 0, "closurefs puts Nix closures"},
		{[]string{"--help", "-h"}, 0, "closurefs puts Nix closures"},
		{[]string{"help", "snapshot"}, 0, "Usage: closurefs snapshot"},
		{[]string{"help", "nosuch"}, 2, "unknown command"},
		{[]string{}, 2, "closurefs puts Nix closures"},
		{[]string{"mount", "--no-passthrough", "--kernel-cache", "/nix/store/x", "/tmp"}, 2, "not both"},
		{[]string{"snapshot", "--keep-hard-links", "--hard-dereference", "/nix/store/x", "-o", "/tmp/x"}, 2, "not both"},
	} {
		out, errOut, code := runCLI(tc.args...)
		got := out
		if tc.code != 0 {
			got = errOut
		}
		if code != tc.code || !strings.Contains(got, tc.want) {
			t.Errorf("closurefs %v: exit %d, output %.200q; want exit %d and %q", tc.args, code, got, tc.code, tc.want)
		}
	}
}
