package squashfs

import (
	"sort"
	"strings"
	"testing"

	"github.com/closurefs/closurefs/image"
)

// TestTailLess checks the packing order of file tails: extension, then
// package directory (a __pycache__'s parent), name, first bytes, and
// grandparent directory.
func TestTailLess(t *testing.T) {
	root := &image.Node{}
	dirs := map[string]*image.Node{"": root}
	var node func(p string) *image.Node
	node = func(p string) *image.Node {
		if n, ok := dirs[p]; ok {
			return n
		}
		i := strings.LastIndexByte(p, '/')
		parent := node(p[:max(i, 0)])
		n := &image.Node{Name: p[i+1:], Parent: parent}
		dirs[p] = n
		return n
	}
	mk := func(p, head string) tail {
		tl := tail{n: node(p)}
		copy(tl.head[:], head)
		return tl
	}
	// want is in the expected order; the input is its reverse.
	want := []tail{
		mk("a-pkg/lib/README", "Read"),
		mk("a-pkg/share/LICENSE", "Perm"),
		mk("d/de/LC_MESSAGES/a.mo", "\xde\x12\x04\x95"),
		mk("d/fr/LC_MESSAGES/a.mo", "\xde\x12\x04\x95"),
		mk("d/de/LC_MESSAGES/b.mo", "\xde\x12\x04\x95"),
		mk("b-py/json/decoder.py", "\"\"\"Im"),
		mk("b-py/json/encoder.py", "\"\"\"Im"),
		mk("c-py/lib/json/encoder.py", "\"\"\"Im"),
		mk("b-py/lib/util.py", "\"\"\"Ut"),
		mk("b-py/lib/util.py2", "#!/u"),
		mk("b-py/json/__pycache__/decoder.pyc", "\xcb\r\r\n"),
		mk("b-py/json/__pycache__/encoder.pyc", "\xcb\r\r\n"),
		mk("x/lib/c.so", "\x7fELF"),
		mk("y/lib/c.so", "\x7fELG"),
	}
	got := make([]tail, len(want))
	for i := range want {
		got[len(want)-1-i] = want[i]
	}
	sort.SliceStable(got, func(i, j int) bool { return tailLess(&got[i], &got[j]) })
	for i := range want {
		if got[i].n != want[i].n {
			var names []string
			for _, tl := range got {
				names = append(names, tl.n.Parent.Name+"/"+tl.n.Name)
			}
			t.Fatalf("order at %d: got %s, want %s/%s\nfull order: %s", i, got[i].n.Name, want[i].n.Parent.Name, want[i].n.Name, strings.Join(names, ", "))
		}
	}
}
