// Command mkfixture builds the closurefs test fixture (a real Nix closure,
// built offline with nix-build) and prints its root store path, or with
// -json the whole fixture description.
//
//	go run ./integration/cmd/mkfixture -size test|demo|bench [-json]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/closurefs/closurefs/integration/fixture"
)

func main() {
	size := flag.String("size", fixture.SizeTest, "fixture size: test, demo or bench")
	asJSON := flag.Bool("json", false, "print the whole fixture description as JSON")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: mkfixture [-size test|demo|bench] [-json]\n\n"+
			"Builds the closurefs test fixture with nix-build (offline) and prints its root store path.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	f, err := fixture.Build(*size)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkfixture:", err)
		os.Exit(1)
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(f); err != nil {
			fmt.Fprintln(os.Stderr, "mkfixture:", err)
			os.Exit(1)
		}
		return
	}
	fmt.Println(f.Root)
}
