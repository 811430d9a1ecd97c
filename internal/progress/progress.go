// Package progress shows a progress bar for long jobs when, and only when,
// standard error is a terminal and the user did not ask for quiet.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Bar tracks bytes done out of a total and, separately, items (such as
// store paths) done. A nil *Bar is valid and does nothing, so callers need
// not check whether progress is shown.
type Bar struct {
	mu        sync.Mutex
	bar       *progressbar.ProgressBar
	desc      string
	items     int64
	itemTotal int64
}

// Enabled reports whether w is a terminal a bar can be drawn on.
func Enabled(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// New returns a bar drawing on w for a job of total bytes and itemTotal
// items, or nil when quiet is set or w is not a terminal.
func New(w io.Writer, desc string, total, itemTotal int64, quiet bool) *Bar {
	if quiet || !Enabled(w) {
		return nil
	}
	b := &Bar{desc: desc, itemTotal: itemTotal}
	b.bar = progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(b.describe()),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionFullWidth(),
	)
	return b
}

func (b *Bar) describe() string {
	if b.itemTotal > 0 {
		return fmt.Sprintf("%s %d/%d", b.desc, b.items, b.itemTotal)
	}
	return b.desc
}

// Add records n more bytes done.
func (b *Bar) Add(n int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.bar.Add64(n)
	b.mu.Unlock()
}

// Item records one more item done.
func (b *Bar) Item() {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.items++
	b.bar.Describe(b.describe())
	b.mu.Unlock()
}

// Finish removes the bar from the terminal.
func (b *Bar) Finish() {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.bar.Finish()
	b.mu.Unlock()
}
