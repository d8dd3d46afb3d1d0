package demo

import (
	"fmt"
	"strings"
	"time"

	"understudy/model"
)

// Rating. Money is in pence and rates in basis points (100 = 1%), all in
// integers, so a price is the same on every node and in every replay.
const (
	basePence     = 150_00 // before the car's value and group
	minimumNet    = 150_00 // no policy is sold for less, before tax
	taxBP         = 1200   // insurance premium tax
	extraDriverBP = 1000   // each named driver after the first
	claimBP       = 3000   // each claim or accident of a driver
)

var (
	useBP     = map[string]int64{"social": 0, "commute": 1000, "business": 2500}
	parkingBP = map[string]int64{"garage": -500, "driveway": 0, "street": 800}
	coverBP   = map[string]int64{"comprehensive": 10000, "tpft": 8500, "tpo": 7500}
	excessBP  = map[string]int64{"0": 0, "250": 500, "500": 1000, "1000": 1500}
	bonusBP   = []int64{0, 2500, 3500, 4500, 5500, 6000} // by years, the last for 5 and more
	extraCost = map[string]int64{"roadside": 35_00, "national": 65_00, "european": 110_00}
)

// price rates the quote: a base from the car's value and insurance group,
// loaded for the riskiest driver (age, experience, claims) and for how the
// car is used and kept, scaled for the cover level, then discounted for a
// voluntary excess and the no-claims bonus; insurance premium tax on top.
func price(ctx model.Context, st *model.State) error {
	ent, err := st.Entity("vehicle.car")
	if err != nil {
		return fmt.Errorf("vehicle: %w", err)
	}
	car, ok := ent.(*model.Record)
	if !ok {
		return fmt.Errorf("vehicle %s: a %T, not a record", ent.EntityRef(), ent)
	}
	value, group := pence(car.Field("value")), car.Field("group").Int()
	if value <= 0 || group < 1 || group > 50 {
		return fmt.Errorf("vehicle %s: value %v and group %v cannot be rated", car.Ref, car.Field("value"), car.Field("group"))
	}
	base := basePence + value*group/2000

	now := ctx.Now()
	drivers := st.Get("drivers").List()
	worst, youngest := int64(0), 200
	for _, d := range drivers {
		age := ageOn(d.Key("born").Time(), now)
		youngest = min(youngest, age)
		worst = max(worst, driverBP(age, d.Key("licensed").Int(), d.Key("claims").Int()))
	}
	loading := worst + extraDriverBP*int64(max(len(drivers)-1, 0)) +
		useBP[st.Get("vehicle.use").Str()] +
		mileageBP(st.Get("vehicle.mileage").Int()) +
		parkingBP[st.Get("vehicle.parking").Str()]

	level := st.Get("cover.level").Str()
	net := scale(base, 10000+loading)
	net = scale(net, coverBP[level])
	net = scale(net, 10000-excessBP[st.Get("cover.excess").Str()])
	net = scale(net, 10000-bonusBP[min(max(st.Get("cover.bonus").Int(), 0), int64(len(bonusBP)-1))])
	net = max(net, minimumNet)
	tax := scale(net, taxBP)

	st.Set("base", money(base))
	st.Set("loading", model.DecimalVal(loading, 2)) // percent
	st.Set("net", money(net))
	st.Set("tax", money(tax))
	st.Set("premium", money(net+tax))
	st.Set("youngestDriver", model.IntVal(int64(youngest)))
	// Extras extend cover of the car itself, so only comprehensive cover
	// offers them.
	st.Set("offerExtras", model.BoolVal(level == "comprehensive"))
	st.Set("reference", model.StringVal("Q-"+strings.ToUpper(digest(ctx.Key("quote"))[:10])))
	st.Set("quotedAt", model.TimeVal(now))
	st.Set("validUntil", model.TimeVal(now.AddDate(0, 0, 30)))
	return nil
}

// driverBP is one driver's loading: young and very old drivers, new
// licences and past claims all cost more.
func driverBP(age int, licensed, claims int64) int64 {
	var bp int64
	switch {
	case age < 20:
		bp += 15000
	case age < 25:
		bp += 8000
	case age < 30:
		bp += 3000
	case age >= 80:
		bp += 4000
	case age >= 70:
		bp += 1500
	}
	switch {
	case licensed < 1:
		bp += 6000
	case licensed < 3:
		bp += 3000
	case licensed < 5:
		bp += 1000
	}
	return bp + claimBP*min(max(claims, 0), 10)
}

func mileageBP(miles int64) int64 {
	switch {
	case miles < 5000:
		return -1000
	case miles <= 10000:
		return 0
	case miles <= 20000:
		return 1000
	}
	return 2000
}

// total adds the chosen extras (none when they were not offered: the
// branch did not run and its values are null) to the premium.
func total(ctx model.Context, st *model.State) error {
	premium := pence(st.Get("price.premium"))
	extras := extraCost[st.Get("extras.addons.breakdown").Str()]
	for _, x := range []struct {
		field string
		cost  int64
	}{{"courtesy", 25_00}, {"legal", 20_00}, {"protectBonus", 30_00}} {
		if st.Get("extras.addons." + x.field).Bool() {
			extras += x.cost
		}
	}
	st.Set("premium", money(premium))
	st.Set("addons", money(extras))
	st.Set("annual", money(premium+extras))
	return nil
}

// ageOn returns the age in whole years on the day of now.
func ageOn(born, now time.Time) int {
	age := now.Year() - born.Year()
	if now.Month() < born.Month() || now.Month() == born.Month() && now.Day() < born.Day() {
		age--
	}
	return age
}

// scale returns pence × bp / 10000, rounded half up.
func scale(pence, bp int64) int64 { return (pence*bp + 5000) / 10000 }

// pence reads a money value of any scale as pence, rounding half up.
func pence(v model.Value) int64 {
	units, sc := v.Decimal()
	for ; sc < 2; sc++ {
		units *= 10
	}
	for ; sc > 2; sc-- {
		units = (units + 5) / 10
	}
	return units
}

func money(p int64) model.Value { return model.DecimalVal(p, 2) }
