// Package battery calls every ThriftTest method as Apache's cross-test
// clients do and checks every result. The one source serves Kitex's
// generated code (internal/battery) and Apache's (internal/abattery, where
// this file is a symbolic link); types.go in each names the types.
package battery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"
)

// Xtruct is an Xtruct with every field set.
func MkXtruct(s string, b int8, i int32, l int64) *Xtruct {
	return &Xtruct{StringThing: s, ByteThing: b, I32Thing: i, I64Thing: l}
}

// MapMap is testMapMap's answer.
func MapMap() map[int32]map[int32]int32 {
	neg, pos := map[int32]int32{}, map[int32]int32{}
	for i := int32(1); i <= 4; i++ {
		neg[-i], pos[i] = -i, i
	}
	return map[int32]map[int32]int32{-4: neg, 4: pos}
}

// InsanityResult is testInsanity's answer for argument a.
func InsanityResult(a *Insanity) map[UserId]map[Numberz]*Insanity {
	return map[UserId]map[Numberz]*Insanity{
		1: {Numberz_TWO: a, Numberz_THREE: a},
		2: {Numberz_SIX: NewInsanity()},
	}
}

type checker struct{ errs []string }

func (c *checker) fail(method string, format string, args ...any) {
	c.errs = append(c.errs, method+": "+fmt.Sprintf(format, args...))
}

func (c *checker) eq(method string, got, want any) {
	if !reflect.DeepEqual(got, want) {
		c.fail(method, "got %v, want %v", got, want)
	}
}

func sorted(v []int32) []int32 {
	out := append([]int32(nil), v...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Run runs the battery; it returns what went wrong, empty when all is well.
func Run(c Client) []string {
	ctx := context.Background()
	var k checker
	if err := c.TestVoid(ctx); err != nil {
		k.fail("testVoid", "%v", err)
	}
	for _, s := range []string{"", "Test", "ünicode ☃ 🦀", strings.Repeat("x", 10000)} {
		v, err := c.TestString(ctx, s)
		if err != nil {
			k.fail("testString", "%v", err)
		} else if v != s {
			k.fail("testString", "got %d bytes, want %d", len(v), len(s))
		}
	}
	for _, b := range []bool{true, false} {
		v, err := c.TestBool(ctx, b)
		if err != nil {
			k.fail("testBool", "%v", err)
		} else {
			k.eq("testBool", v, b)
		}
	}
	for _, n := range []int8{1, 0, -1, math.MinInt8, math.MaxInt8} {
		v, err := c.TestByte(ctx, n)
		if err != nil {
			k.fail("testByte", "%v", err)
		} else {
			k.eq("testByte", v, n)
		}
	}
	for _, n := range []int32{-1, 0, 1, math.MinInt32, math.MaxInt32} {
		v, err := c.TestI32(ctx, n)
		if err != nil {
			k.fail("testI32", "%v", err)
		} else {
			k.eq("testI32", v, n)
		}
	}
	for _, n := range []int64{0, -34359738368, math.MinInt64, math.MaxInt64} {
		v, err := c.TestI64(ctx, n)
		if err != nil {
			k.fail("testI64", "%v", err)
		} else {
			k.eq("testI64", v, n)
		}
	}
	for _, d := range []float64{-5.2098523, 0, math.Copysign(0, -1), math.MaxFloat64, math.SmallestNonzeroFloat64, 1e-300, math.Inf(1)} {
		v, err := c.TestDouble(ctx, d)
		if err != nil {
			k.fail("testDouble", "%v", err)
		} else if math.Float64bits(v) != math.Float64bits(d) {
			k.fail("testDouble", "got %v, want %v", v, d)
		}
	}
	bin := make([]byte, 256)
	for i := range bin {
		bin[i] = byte(i)
	}
	if v, err := c.TestBinary(ctx, bin); err != nil {
		k.fail("testBinary", "%v", err)
	} else if !bytes.Equal(v, bin) {
		k.fail("testBinary", "got %x", v)
	}
	x := MkXtruct("Zero", 1, -3, -5)
	if v, err := c.TestStruct(ctx, x); err != nil {
		k.fail("testStruct", "%v", err)
	} else {
		k.eq("testStruct", v, x)
	}
	nest := &Xtruct2{ByteThing: 1, StructThing: x, I32Thing: 5}
	if v, err := c.TestNest(ctx, nest); err != nil {
		k.fail("testNest", "%v", err)
	} else {
		k.eq("testNest", v, nest)
	}
	m := map[int32]int32{}
	for i := int32(0); i < 5; i++ {
		m[i] = i - 10
	}
	if v, err := c.TestMap(ctx, m); err != nil {
		k.fail("testMap", "%v", err)
	} else {
		k.eq("testMap", v, m)
	}
	sm := map[string]string{"a": "2", "b": "blah", "some": "thing", "ü": "☃"}
	if v, err := c.TestStringMap(ctx, sm); err != nil {
		k.fail("testStringMap", "%v", err)
	} else {
		k.eq("testStringMap", v, sm)
	}
	set := []int32{-2, -1, 0, 1, 2}
	if v, err := c.TestSet(ctx, set); err != nil {
		k.fail("testSet", "%v", err)
	} else {
		k.eq("testSet", sorted(v), set)
	}
	list := []int32{-2, -1, 0, 1, 2, math.MaxInt32}
	if v, err := c.TestList(ctx, list); err != nil {
		k.fail("testList", "%v", err)
	} else {
		k.eq("testList", v, list)
	}
	for _, n := range []Numberz{Numberz_ONE, Numberz_TWO, Numberz_THREE, Numberz_FIVE, Numberz_EIGHT} {
		if v, err := c.TestEnum(ctx, n); err != nil {
			k.fail("testEnum", "%v", err)
		} else {
			k.eq("testEnum", v, n)
		}
	}
	if v, err := c.TestTypedef(ctx, 309858235082523); err != nil {
		k.fail("testTypedef", "%v", err)
	} else {
		k.eq("testTypedef", v, UserId(309858235082523))
	}
	if v, err := c.TestMapMap(ctx, 1); err != nil {
		k.fail("testMapMap", "%v", err)
	} else {
		k.eq("testMapMap", v, MapMap())
	}
	ins := &Insanity{
		UserMap: map[Numberz]UserId{Numberz_FIVE: 5, Numberz_EIGHT: 8},
		Xtructs: []*Xtruct{MkXtruct("Goodbye4", 4, 4, 4), MkXtruct("Hello2", 2, 2, 2)},
	}
	if v, err := c.TestInsanity(ctx, ins); err != nil {
		k.fail("testInsanity", "%v", err)
	} else {
		want := InsanityResult(ins)
		// An empty Insanity decodes with nil maps and lists on both sides.
		k.eq("testInsanity", fmt.Sprint(v), fmt.Sprint(want))
	}
	if v, err := c.TestMulti(ctx, 1, 2, 3, map[int16]string{1: "one"}, Numberz_TWO, 42); err != nil {
		k.fail("testMulti", "%v", err)
	} else {
		k.eq("testMulti", v, MkXtruct("Hello2", 1, 2, 3))
	}

	err := c.TestException(ctx, "Xception")
	var xe *Xception
	if !errors.As(err, &xe) {
		k.fail("testException(Xception)", "got %v (%T)", err, err)
	} else {
		k.eq("testException(Xception)", [2]any{xe.ErrorCode, xe.Message}, [2]any{int32(1001), "Xception"})
	}
	if err := c.TestException(ctx, "TException"); err == nil || errors.As(err, &xe) {
		k.fail("testException(TException)", "got %v, want an undeclared exception", err)
	}
	if err := c.TestException(ctx, "success"); err != nil {
		k.fail("testException(success)", "%v", err)
	}
	_, err = c.TestMultiException(ctx, "Xception", "ignored")
	if !errors.As(err, &xe) {
		k.fail("testMultiException(Xception)", "got %v", err)
	} else {
		k.eq("testMultiException(Xception)", [2]any{xe.ErrorCode, xe.Message}, [2]any{int32(1001), "This is an Xception"})
	}
	_, err = c.TestMultiException(ctx, "Xception2", "ignored")
	var xe2 *Xception2
	if !errors.As(err, &xe2) {
		k.fail("testMultiException(Xception2)", "got %v", err)
	} else if xe2.ErrorCode != 2002 || xe2.StructThing == nil || xe2.StructThing.StringThing != "This is an Xception2" {
		k.fail("testMultiException(Xception2)", "got %+v", xe2)
	}
	if v, err := c.TestMultiException(ctx, "no exception", "test 3"); err != nil {
		k.fail("testMultiException", "%v", err)
	} else if v.StringThing != "test 3" {
		k.fail("testMultiException", "got %+v", v)
	}

	start := time.Now()
	if err := c.TestOneway(ctx, 1); err != nil {
		k.fail("testOneway", "%v", err)
	}
	if d := time.Since(start); d > 900*time.Millisecond {
		k.fail("testOneway", "took %v: the call waited", d)
	}
	if err := c.TestVoid(ctx); err != nil {
		k.fail("testVoid after testOneway", "%v", err)
	}
	return k.errs
}

// Concurrent makes n calls at once with distinct arguments and checks that
// each gets its own answer.
func Concurrent(c Client, n int) []string {
	var mu sync.Mutex
	var errs []string
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			want := fmt.Sprintf("call-%d-%s", i, strings.Repeat("y", i*97))
			got, err := c.TestString(context.Background(), want)
			if err == nil && got != want {
				err = fmt.Errorf("got another call's answer (%d bytes)", len(got))
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Sprintf("testString #%d: %v", i, err))
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	return errs
}
