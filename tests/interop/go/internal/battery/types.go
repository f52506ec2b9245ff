package battery

import (
	tt "weftinterop/kitex_gen/thrifttest"
	"weftinterop/kitex_gen/thrifttest/thrifttest"
)

// Client is Kitex's generated ThriftTest client.
type Client = thrifttest.Client

type (
	Xtruct    = tt.Xtruct
	Xtruct2   = tt.Xtruct2
	Insanity  = tt.Insanity
	Numberz   = tt.Numberz
	UserId    = tt.UserId
	Xception  = tt.Xception
	Xception2 = tt.Xception2
)

const (
	Numberz_ONE   = tt.Numberz_ONE
	Numberz_TWO   = tt.Numberz_TWO
	Numberz_THREE = tt.Numberz_THREE
	Numberz_FIVE  = tt.Numberz_FIVE
	Numberz_SIX   = tt.Numberz_SIX
	Numberz_EIGHT = tt.Numberz_EIGHT
)

var NewInsanity = tt.NewInsanity
