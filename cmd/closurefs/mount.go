package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/closurefs/closurefs/closure"
	"github.com/closurefs/closurefs/fusefs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/spf13/pflag"
)

// mountCommands returns mount, mount-image, umount and ctl.
func mountCommands() []*command {
	return []*command{mountCommand(), mountImageCommand(), umountCommand(), ctlCommand()}
}

// daemonFlags are the flags every mounting command shares.
type daemonFlags struct {
	allowOther, background, debug bool
	logFile                       string
}

func (d *daemonFlags) add(fs *pflag.FlagSet) {
	fs.BoolVar(&d.allowOther, "allow-other", false, "let other users access the mount (FUSE allow_other)")
	fs.BoolVar(&d.background, "background", false, "detach once the mount is ready")
	fs.StringVar(&d.logFile, "log", "", "append the daemon's log to this `file` instead of standard error")
	fs.BoolVar(&d.debug, "debug", false, "log every FUSE request")
}

// readyFDEnv names the environment variable that tells a background child
// which descriptor to report readiness on.
const readyFDEnv = "CLOSUREFS_READY_FD"

// daemon runs mount in the foreground, or, with --background, in a child
// process whose readiness (or failure message) it waits for. mount calls
// ready once the file system is mounted, then serves until it ends.
func (d *daemonFlags) daemon(e *env, mount func(logger *log.Logger, ready func()) error) error {
	if d.background && os.Getenv(readyFDEnv) == "" {
		return d.spawn(e)
	}
	var readyFile *os.File
	logw := e.stderr
	if os.Getenv(readyFDEnv) != "" {
		// A background child: its standard error is already the log.
		readyFile = os.NewFile(3, "ready")
		os.Unsetenv(readyFDEnv)
	} else if d.logFile != "" {
		lf, err := os.OpenFile(d.logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer lf.Close()
		logw = lf
	}
	logger := log.New(logw, "closurefs: ", log.LstdFlags)
	ready := func() {
		if readyFile != nil {
			readyFile.WriteString("ok\n")
			readyFile.Close()
			readyFile = nil
		}
	}
	err := mount(logger, ready)
	if err != nil && readyFile != nil {
		readyFile.WriteString(err.Error() + "\n")
		readyFile.Close()
	}
	return err
}

// spawn starts this command again as a detached child and waits until it
// reports the mount ready.
func (d *daemonFlags) spawn(e *env) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	defer pr.Close()
	cmd := exec.Command(self, os.Args[1:]...)
	cmd.Env = append(os.Environ(), readyFDEnv+"=3")
	cmd.ExtraFiles = []*os.File{pw}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if d.logFile != "" {
		lf, err := os.OpenFile(d.logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			pw.Close()
			return err
		}
		defer lf.Close()
		cmd.Stdout, cmd.Stderr = lf, lf
	}
	if err := cmd.Start(); err != nil {
		pw.Close()
		return err
	}
	pw.Close()
	line, _ := bufio.NewReader(pr).ReadString('\n')
	line = strings.TrimSpace(line)
	if line == "ok" {
		cmd.Process.Release()
		return nil
	}
	cmd.Wait()
	if line == "" {
		line = "the background daemon exited before the mount was ready"
	}
	return errors.New(line)
}

// serve waits for server to end, unmounting on SIGINT, SIGTERM or SIGHUP
// (the terminal of a foreground daemon closed). A busy
// mount is detached lazily so that the daemon can finish serving the open
// files and exit.
func serve(server *fuse.Server, mountpoint string, logger *log.Logger) {
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sig)
	done := make(chan struct{})
	go func() {
		server.Wait()
		close(done)
	}()
	select {
	case <-done:
		return
	case s := <-sig:
		logger.Printf("%v: unmounting %s", s, mountpoint)
	}
	if err := server.Unmount(); err != nil {
		logger.Printf("unmount: %v; detaching %s lazily", err, mountpoint)
		if err := fusefs.Unmount(mountpoint, true); err != nil {
			logger.Printf("%v", err)
		}
	}
	<-done
	logger.Printf("unmounted %s", mountpoint)
}

func mountImageCommand() *command {
	return &command{
		name:    "mount-image",
		summary: "mount an erofs or squashfs image read-only through FUSE",
		usage:   "[flags] IMAGE MOUNTPOINT",
		help: `Mounts IMAGE (erofs or squashfs, told apart by magic) read-only on
MOUNTPOINT through FUSE, and serves it in the foreground, logging to stderr,
until unmounted (closurefs umount MOUNTPOINT) or interrupted (SIGINT,
SIGTERM or SIGHUP unmount cleanly). With --background it detaches once the
mount is ready.`,
		setup: func(fs *pflag.FlagSet, e *env) func([]string) error {
			var d daemonFlags
			d.add(fs)
			return func(args []string) error {
				if len(args) != 2 {
					return usagef("want IMAGE MOUNTPOINT")
				}
				img, mnt := args[0], args[1]
				opened, err := openImage(img)
				if err != nil {
					return err
				}
				defer opened.Close()
				if err := fusefs.CheckMountpoint(mnt); err != nil {
					return err
				}
				fsys, format := opened.FS, opened.Format
				fi, err := opened.file.Stat()
				if err != nil {
					return err
				}
				return d.daemon(e, func(logger *log.Logger, ready func()) error {
					root, err := fusefs.NewImageRoot(fsys, fi.Size())
					if err != nil {
						return fmt.Errorf("%s: bad %s image: %w", img, format, err)
					}
					root.SpliceFrom(opened.file)
					abs, _ := filepath.Abs(img)
					server, err := fusefs.Mount(mnt, root, root.StableAttr(), fusefs.MountOptions{
						FsName: abs, AllowOther: d.allowOther, Debug: d.debug, Logger: logger, CachedDirs: true, SpareProcs: true,
					})
					if err != nil {
						return err
					}
					logger.Printf("mounted %s image %s on %s (read-only)", format, img, mnt)
					ready()
					serve(server, mnt, logger)
					return nil
				})
			}
		},
	}
}

func mountCommand() *command {
	return &command{
		name:    "mount",
		summary: "mount a live read-only view of exactly one closure of the store",
		usage:   "[flags] ROOT... MOUNTPOINT",
		help: `Mounts on MOUNTPOINT a view of the store that lists exactly the closure of
the ROOTs (store paths, or symlinks into the store such as result links,
profiles and /run/current-system): any other name is ENOENT, even a store
path that exists. Below each store path the store is shown read-only as it is
(symlinks unresolved, writes fail with EROFS); open files are passed to the
kernel (FUSE passthrough) where it allows, else read by the daemon.

The view is live: root symlinks are watched, and when one changes or a store
path of the view disappears (garbage collection) the closure is recomputed
and the view switches at once, while open files keep working. Each store
path (except those that are symlinks: the kernel allows no user.* xattrs on
symlinks) carries the xattrs user.nix.nar-hash, user.nix.nar-size,
user.nix.references and user.nix.referrers (within the view).
'closurefs ctl MOUNTPOINT ...' controls a running view. With --read-dir the
store paths are served from that directory (e.g. a chroot store's).`,
		setup: func(fs *pflag.FlagSet, e *env) func([]string) error {
			var d daemonFlags
			sf := sourceFlags{stderr: e.stderr}
			d.add(fs)
			noPT := fs.Bool("no-passthrough", false, "never use kernel FUSE passthrough; the daemon reads files itself")
			kcache := fs.Bool("kernel-cache", false, "open files without asking the daemon and read them through the mount's page cache\n(fastest for many small files; no passthrough; a file garbage-collected while open\nstays readable only as far as it was read)")
			interval := fs.Duration("interval", 200*time.Millisecond, "how often roots and store paths are checked")
			sf.add(fs)
			return func(args []string) error {
				if len(args) < 2 {
					return usagef("want ROOT... MOUNTPOINT")
				}
				if *noPT && *kcache {
					return usagef("give --no-passthrough or --kernel-cache, not both")
				}
				roots, mnt := args[:len(args)-1], args[len(args)-1]
				for i, r := range roots {
					if !strings.HasPrefix(r, sf.storeDir+"/") {
						if abs, err := filepath.Abs(r); err == nil {
							roots[i] = abs
						}
					}
				}
				if err := fusefs.CheckMountpoint(mnt); err != nil {
					return err
				}
				return d.daemon(e, func(logger *log.Logger, ready func()) error {
					src, done, err := sf.source(fs, true)
					if err != nil {
						return err
					}
					defer done()
					v, err := fusefs.NewView(fusefs.ViewOptions{
						StoreDir: sf.storeDir, ReadDir: sf.readDir, Source: src, Roots: roots, NoPassthrough: *noPT, KernelCache: *kcache,
						Interval: *interval, Logf: logger.Printf,
					})
					if err != nil {
						return err
					}
					defer v.Close()
					server, err := fusefs.Mount(mnt, v.Root(), v.RootStableAttr(), fusefs.MountOptions{
						FsName: "closurefs:" + sf.storeDir, AllowOther: d.allowOther, Debug: d.debug, Logger: logger, CachedDirs: true, SpareProcs: true,
					})
					if err != nil {
						return err
					}
					l, err := fusefs.ServeControl(mnt, v)
					if err != nil {
						server.Unmount()
						return err
					}
					defer l.Close()
					pt := "plain reads by the daemon"
					switch {
					case *kcache:
						pt = "the mount's page cache, files opened by the kernel without the daemon (--kernel-cache)"
						v.SetPassthrough(false)
					case *noPT:
						pt += " (--no-passthrough)"
						v.SetPassthrough(false)
					case fusefs.Passthrough(server):
						pt = "kernel FUSE passthrough"
					default:
						pt += " (the kernel or this process cannot use FUSE passthrough)"
						v.SetPassthrough(false)
					}
					sock, _ := fusefs.ControlSocket(mnt)
					logger.Printf("mounted the closure of %s on %s: %d store paths; file reads: %s; control: %s",
						strings.Join(roots, " "), mnt, len(v.Closure().Paths), pt, sock)
					go v.Watch()
					ready()
					serve(server, mnt, logger)
					return nil
				})
			}
		},
	}
}

func umountCommand() *command {
	return &command{
		name:    "umount",
		summary: "unmount a closurefs mount",
		usage:   "[--lazy] MOUNTPOINT",
		setup: func(fs *pflag.FlagSet, e *env) func([]string) error {
			lazy := fs.BoolP("lazy", "l", false, "detach a busy mount now; it goes away when no longer used")
			return func(args []string) error {
				if len(args) != 1 {
					return usagef("want MOUNTPOINT")
				}
				return fusefs.Unmount(args[0], *lazy)
			}
		},
	}
}

func ctlCommand() *command {
	return &command{
		name:    "ctl",
		summary: "control a running closure view",
		usage:   "MOUNTPOINT status|roots|add-root PATH|remove-root PATH|snapshot -o IMAGE [snapshot flags]",
		help: `Talks to the daemon of the closure view mounted at MOUNTPOINT over its
control socket (root only):
  status            mountpoint, roots, path count, NAR size, read mode
  roots             each root and the store path it leads to now
  add-root PATH     add a root; the view switches to the new closure
  remove-root PATH  remove a root
  snapshot -o IMAGE write an image of exactly the closure shown now
                    (the flags of 'closurefs snapshot' apply)`,
		setup: func(fs *pflag.FlagSet, e *env) func([]string) error {
			jsonOut := fs.Bool("json", false, "print status and roots as JSON")
			fs.SetInterspersed(false)
			return func(args []string) error {
				if len(args) < 2 {
					return usagef("want MOUNTPOINT and a request")
				}
				mnt, op, rest := args[0], args[1], args[2:]
				switch op {
				case "status", "roots":
					// --json may also follow the request.
					for len(rest) > 0 && rest[0] == "--json" {
						*jsonOut, rest = true, rest[1:]
					}
					if len(rest) != 0 {
						return usagef("%s takes no arguments", op)
					}
					rep, err := fusefs.Control(mnt, fusefs.Request{Op: op})
					if err != nil {
						return err
					}
					return printStatus(e.stdout, op, rep.Status, *jsonOut)
				case "add-root", "remove-root":
					if len(rest) != 1 {
						return usagef("%s takes one PATH", op)
					}
					arg := rest[0]
					if abs, err := filepath.Abs(arg); err == nil {
						arg = abs
					}
					_, err := fusefs.Control(mnt, fusefs.Request{Op: op, Arg: arg})
					return err
				case "snapshot":
					return ctlSnapshot(e, mnt, rest)
				}
				return usagef("unknown request %q", op)
			}
		},
	}
}

func printStatus(w io.Writer, op string, s *fusefs.Status, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if op == "roots" {
			return enc.Encode(s.Roots)
		}
		return enc.Encode(s)
	}
	if op == "status" {
		mode := "plain reads"
		if s.Passthrough {
			mode = "passthrough"
		}
		fmt.Fprintf(w, "mountpoint:  %s\nstore:       %s\npid:         %d\nstore paths: %d\nnar size:    %d\ngeneration:  %d\nfile reads:  %s\n",
			s.Mountpoint, s.StoreDir, s.PID, s.Paths, s.NarSize, s.Generation, mode)
		if s.ReadDir != "" {
			fmt.Fprintf(w, "read from:   %s\n", s.ReadDir)
		}
	}
	for _, r := range s.Roots {
		if r.StorePath != "" && r.Error != "" {
			fmt.Fprintf(w, "root %s -> %s (left out: %s)\n", r.Arg, r.StorePath, r.Error)
		} else if r.StorePath != "" {
			fmt.Fprintf(w, "root %s -> %s\n", r.Arg, r.StorePath)
		} else {
			fmt.Fprintf(w, "root %s: %s\n", r.Arg, r.Error)
		}
	}
	return nil
}

// ctlSnapshot writes an image of the closure the view shows now: it asks
// the daemon for the closure, writes its registration to a temporary file
// and runs `closurefs snapshot --registration FILE PATHS... ARGS...`, so
// that every snapshot flag applies.
func ctlSnapshot(e *env, mnt string, args []string) error {
	rep, err := fusefs.Control(mnt, fusefs.Request{Op: "closure"})
	if err != nil {
		return err
	}
	cl := rep.Closure
	if cl == nil || len(cl.Paths) == 0 {
		return fmt.Errorf("the view at %s is empty: nothing to snapshot", mnt)
	}
	tmp, err := os.CreateTemp("", "closurefs-ctl-registration-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	werr := closure.WriteRegistration(tmp, cl)
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("writing the view's registration: %w", werr)
	}
	sargs := []string{"snapshot", "--registration", tmp.Name(), "--store-dir", cl.StoreDir}
	if rep.ReadDir != "" {
		sargs = append(sargs, "--read-dir", rep.ReadDir)
	}
	sargs = append(sargs, args...)
	for _, p := range cl.Paths {
		sargs = append(sargs, p.Path)
	}
	if code := run(sargs, e); code != exitOK {
		return &exitError{code}
	}
	return nil
}
