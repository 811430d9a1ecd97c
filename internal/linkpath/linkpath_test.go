package linkpath

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFollow(t *testing.T) {
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	j := func(p ...string) string { return filepath.Join(append([]string{base}, p...)...) }
	os.MkdirAll(j("x", "y"), 0o755)
	os.MkdirAll(j("d", "e"), 0o755)
	for link, target := range map[string]string{
		"out":          "x/y",       // a directory link in the middle of paths below
		"x/y/up":       "../img",    // ".." from the link's real directory
		"plain":        "file",      // a relative target
		"abs":          j("x", "f"), // an absolute one
		"chain":        "plain",     // a link to a link
		"s":            "d/e",
		"through":      "s/../f", // ".." after a symlink in the target
		"loop":         "loop",
		"dir/dangling": "gone",
	} {
		os.MkdirAll(filepath.Dir(j(link)), 0o755)
		os.Symlink(target, j(link))
	}
	for _, tc := range []struct{ in, want string }{
		{j("out", "up"), j("x", "img")},
		{j("plain"), j("file")},
		{j("abs"), j("x", "f")},
		{j("chain"), j("file")},
		{j("through"), j("d", "f")},
		{j("dir", "dangling"), j("dir", "gone")},
		{j("x"), j("x")},
		{j("nothing"), j("nothing")},
	} {
		if got, err := Follow(tc.in); err != nil || got != tc.want {
			t.Errorf("Follow(%s) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	if _, err := Follow(j("loop")); err == nil || !strings.Contains(err.Error(), "too many levels") {
		t.Errorf("Follow of a loop: %v", err)
	}
}
