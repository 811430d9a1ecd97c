package zstdenc

import "math/bits"

// Literal length and match length codes (RFC 8878 3.1.1.3.2.1.1).
var (
	llBase = [36]uint32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
		16, 18, 20, 22, 24, 28, 32, 40, 48, 64, 128, 256, 512, 1024, 2048, 4096,
		8192, 16384, 32768, 65536}
	llBits = [36]uint8{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		1, 1, 1, 1, 2, 2, 3, 3, 4, 6, 7, 8, 9, 10, 11, 12,
		13, 14, 15, 16}
	mlBase = [53]uint32{3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18,
		19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34,
		35, 37, 39, 41, 43, 47, 51, 59, 67, 83, 99, 131, 259, 515, 1027, 2051,
		4099, 8195, 16387, 32771, 65539}
	mlBits = [53]uint8{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 7, 8, 9, 10, 11,
		12, 13, 14, 15, 16}
)

// Predefined distributions (RFC 8878 3.1.1.3.2.2).
var (
	llDefault = []int16{4, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1,
		2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 2, 1, 1, 1, 1, 1,
		-1, -1, -1, -1}
	mlDefault = []int16{1, 4, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1,
		1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
		1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1,
		-1, -1, -1, -1, -1}
	ofDefault = []int16{1, 1, 1, 1, 1, 1, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1,
		1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1}
)

const (
	llDefaultLog = 6
	mlDefaultLog = 6
	ofDefaultLog = 5
	llMaxLog     = 9
	mlMaxLog     = 9
	ofMaxLog     = 8
	maxOfCode    = 31
)

// Small-value code lookups, filled once by init and read-only after.
var (
	llCodeSmall [64]uint8
	mlCodeSmall [128]uint8
)

func init() {
	for c := len(llBase) - 1; c >= 0; c-- {
		for v := llBase[c]; v < 64 && v < llBase[c]+1<<llBits[c]; v++ {
			llCodeSmall[v] = uint8(c)
		}
	}
	for c := len(mlBase) - 1; c >= 0; c-- {
		for v := mlBase[c] - 3; v < 128 && v < mlBase[c]-3+1<<mlBits[c]; v++ {
			mlCodeSmall[v] = uint8(c)
		}
	}
}

// llCode returns the code of literal length ll.
func llCode(ll uint32) uint8 {
	if ll < 64 {
		return llCodeSmall[ll]
	}
	return uint8(bits.Len32(ll) - 1 + 19)
}

// mlCode returns the code of match length ml (ml >= 3).
func mlCode(ml uint32) uint8 {
	b := ml - 3
	if b < 128 {
		return mlCodeSmall[b]
	}
	return uint8(bits.Len32(b) - 1 + 36)
}

// ofCode returns the code of an offset value (>= 1).
func ofCode(ov uint32) uint8 { return uint8(bits.Len32(ov) - 1) }

// Typical code frequencies of optimal parses of 128 KiB blocks of Nix
// store files (binaries, libraries, text), the prices of a block's first
// parsing pass.
var (
	llPrior = [36]uint32{970721, 664977, 231394, 61225, 35448, 47702, 16483, 9990, 7642, 6601, 6741, 2975, 2451, 2289, 1920, 1480, 2320, 1655, 1440, 1389, 1687, 1137, 1416, 2367, 1272, 698, 203, 149, 221, 305, 283, 220, 107, 23, 0, 0}
	mlPrior = [53]uint32{516643, 247383, 186980, 244013, 174473, 96493, 73233, 43492, 120337, 17359, 35785, 32820, 36313, 19858, 21466, 18718, 17094, 13905, 12292, 10315, 15862, 7801, 8821, 7018, 8135, 5203, 5326, 5075, 4332, 3531, 2802, 8960, 3710, 5351, 4272, 12168, 3862, 5767, 7200, 5512, 7443, 3562, 2531, 2507, 919, 200, 60, 16, 7, 5, 1, 0, 0}
	ofPrior = [maxOfCode + 1]uint32{492550, 85876, 6943, 39044, 80448, 149546, 132824, 120275, 115185, 119467, 128429, 133019, 138493, 133934, 113770, 73881, 23247}
)
