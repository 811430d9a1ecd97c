package fusefs

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/closurefs/closurefs/closure"
	"github.com/closurefs/closurefs/internal/linkpath"
)

// ControlDir holds the control sockets of running closure views.
const ControlDir = "/run/closurefs"

// ControlSocket returns the control socket path of the view mounted at
// mountpoint: a name derived from the mountpoint's canonical path (see
// Mountpoint), so that any spelling of it finds the same socket.
func ControlSocket(mountpoint string) (string, error) {
	abs, err := Mountpoint(mountpoint)
	if err != nil {
		return "", err
	}
	h := sha256.Sum256([]byte(abs))
	return filepath.Join(ControlDir, hex.EncodeToString(h[:12])+".sock"), nil
}

// Mountpoint returns the absolute path with no symlinks in it that
// mountpoint names, as mount(2) resolves it. It never looks inside a
// mounted file system (a hung daemon cannot block it): symlinks at the
// last element are read with readlink (see linkpath.Follow), which a
// directory answers at once.
func Mountpoint(mountpoint string) (string, error) {
	abs, err := filepath.Abs(mountpoint)
	if err != nil {
		return "", err
	}
	if abs, err = linkpath.Follow(abs); err != nil {
		return "", err
	}
	if dir, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		abs = filepath.Join(dir, filepath.Base(abs))
	}
	return abs, nil
}

// Request is one control request.
type Request struct {
	Op  string `json:"op"` // status, roots, add-root, remove-root, closure
	Arg string `json:"arg,omitempty"`
}

// Status describes a running view.
type Status struct {
	Mountpoint  string       `json:"mountpoint"`
	StoreDir    string       `json:"storeDir"`
	Roots       []RootStatus `json:"roots"`
	Paths       int          `json:"paths"`
	NarSize     uint64       `json:"narSize"`
	Generation  uint64       `json:"generation"`
	Passthrough bool         `json:"passthrough"`
	PID         int          `json:"pid"`
	// ReadDir is where the store paths are read from, if not StoreDir.
	ReadDir string `json:"readDir,omitempty"`
}

// Reply is the answer to a Request.
type Reply struct {
	Error   string           `json:"error,omitempty"`
	Status  *Status          `json:"status,omitempty"`
	Closure *closure.Closure `json:"closure,omitempty"`
	// ReadDir comes with Closure: where its store paths are read from,
	// if not its StoreDir.
	ReadDir string `json:"readDir,omitempty"`
}

// ServeControl listens on the control socket of the view mounted at
// mountpoint (mode 0600, in a root-only directory) and answers requests
// until the returned listener is closed.
func ServeControl(mountpoint string, v *View) (net.Listener, error) {
	sock, err := ControlSocket(mountpoint)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(ControlDir, 0o700); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if c, err := net.DialTimeout("unix", sock, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s is in use by another daemon", sock)
	}
	os.Remove(sock)
	old := umask(0o177)
	l, err := net.Listen("unix", sock)
	umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	abs, _ := Mountpoint(mountpoint)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go serveConn(c, abs, v)
		}
	}()
	return l, nil
}

func serveConn(c net.Conn, mountpoint string, v *View) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	var req Request
	if err := json.NewDecoder(bufio.NewReader(c)).Decode(&req); err != nil {
		return
	}
	var rep Reply
	switch req.Op {
	case "status", "roots":
		cl := v.Closure()
		rep.Status = &Status{
			Mountpoint: mountpoint, StoreDir: cl.StoreDir, Roots: v.Roots(), Paths: len(cl.Paths),
			NarSize: closure.TotalNarSize(cl), Generation: v.Generation(), Passthrough: v.Passthrough(), PID: os.Getpid(),
			ReadDir: v.readDir(),
		}
	case "add-root":
		if err := v.AddRoot(req.Arg); err != nil {
			rep.Error = err.Error()
		}
	case "remove-root":
		if err := v.RemoveRoot(req.Arg); err != nil {
			rep.Error = err.Error()
		}
	case "closure":
		rep.Closure = v.Closure()
		rep.ReadDir = v.readDir()
	default:
		rep.Error = fmt.Sprintf("unknown request %q", req.Op)
	}
	json.NewEncoder(c).Encode(&rep)
}

// Control sends req to the view mounted at mountpoint.
func Control(mountpoint string, req Request) (*Reply, error) {
	sock, err := ControlSocket(mountpoint)
	if err != nil {
		return nil, err
	}
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no closure view is running at %s (no %s)", mountpoint, sock)
		}
		return nil, fmt.Errorf("contacting the view at %s: %w", mountpoint, err)
	}
	defer c.Close()
	if err := json.NewEncoder(c).Encode(&req); err != nil {
		return nil, err
	}
	var rep Reply
	if err := json.NewDecoder(bufio.NewReader(c)).Decode(&rep); err != nil {
		return nil, fmt.Errorf("reading the reply of the view at %s: %w", mountpoint, err)
	}
	if rep.Error != "" {
		return &rep, errors.New(rep.Error)
	}
	return &rep, nil
}
