package main

// closureCommands returns the commands of the closure package: closure,
// why and nar-hash.
func closureCommands() []*command {
	return nil
}
