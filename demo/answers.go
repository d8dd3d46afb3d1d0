package demo

import (
	"net/url"
	"strconv"
)

// customer is a person whose answers Answers gives.
type customer struct {
	name, email, born, phone, street, city, postcode string
	licensed, bonus                                  int
}

// customers are made up; their phone numbers are in the ranges Ofcom keeps
// for drama, their addresses real streets with made-up numbers.
var customers = []customer{
	{"Ada Lovelace", "ada.lovelace@example.com", "1985-12-10", "020 7946 0958", "12 St James's Square", "London", "SW1Y 4JH", 15, 9},
	{"Alan Turing", "alan.turing@example.org", "1972-06-23", "0161 496 0321", "43 Adlington Road", "Wilmslow", "SK9 2BJ", 30, 12},
	{"Grace Hopper", "grace@example.net", "1990-12-09", "+44 117 496 0123", "8 Queen Square", "Bristol", "BS1 4ND", 9, 4},
	{"Tim Berners-Lee", "timbl@example.com", "1968-06-08", "01865 496000", "20 Parks Road", "Oxford", "OX1 3QD", 35, 20},
	{"Karen Spärck Jones", "ksj@example.org", "1979-08-26", "01223 496789", "15 JJ Thomson Avenue", "Cambridge", "CB3 0FD", 22, 0},
	{"Sophie Wilson", "sophie.wilson@example.com", "2005-06-01", "0113 496 0555", "3 Park Row", "Leeds", "LS1 5HD", 1, 0},
	{"Margaret Hamilton", "mhamilton@example.net", "1950-08-17", "0131 496 0777", "1 Chambers Street", "Edinburgh", "EH1 1JF", 50, 25},
}

// others are the named drivers after the policyholder.
var others = []struct {
	name, born, relation string
	licensed, claims     int
}{
	{"Mary Somerville", "1983-04-02", "partner", 12, 0},
	{"Charles Babbage", "2007-03-05", "family", 0, 0},
	{"Hedy Lamarr", "1964-11-09", "other", 40, 1},
	{"Edsger Dijkstra", "1991-05-11", "partner", 10, 2},
}

// Test cards of each network, valid by the Luhn check, by provider id.
var testCards = map[string]string{
	"visa-debit":        "4111 1111 1111 1111",
	"visa-credit":       "4012 8888 8888 1881",
	"mastercard-debit":  "5555 5555 5555 4444",
	"mastercard-credit": "5105 1051 0510 5100",
	"amex":              "3782 822463 10005",
}

// Answers returns valid answers to the page at step (one of the Step
// constants) for customer i. Different customers differ in who they are,
// their car, cover, extras and way of paying; i may be any number (a
// session's number), and the same i always gives the same answers.
//
// On StepDriver, Answers describes the policyholder as the only driver.
// DriverAnswers describes further drivers. An unknown step gets no answers.
func Answers(step string, i int) url.Values {
	i = max(i, -i, 0) // any int, negative too
	c := customers[i%len(customers)]
	v := url.Values{}
	switch step {
	case StepApplicant:
		v.Set("name", c.name)
		v.Set("email", c.email)
		v.Set("born", c.born)
		v.Set("phone", c.phone)
		v.Set("street", c.street)
		v.Set("city", c.city)
		v.Set("postcode", c.postcode)
	case StepVehicle:
		v.Set("car", vehicles[i%len(vehicles)].id)
		v.Set("registration", []string{"LV21 XKE", "BD19 SMR", "YA70 KLP", "MW22 ZTE"}[i%4])
		v.Set("mileage", strconv.Itoa(4000+1500*(i%13)))
		v.Set("use", []string{"commute", "social", "business"}[i%3])
		v.Set("parking", []string{"driveway", "garage", "street"}[i%3])
	case StepDriver:
		return DriverAnswers(i, 0, false)
	case StepCover:
		// Customers 0, 3, 4, 6... choose comprehensive cover, so most
		// quotes are offered the extras.
		v.Set("level", []string{"comprehensive", "tpft", "tpo", "comprehensive"}[i%4])
		v.Set("excess", []string{"250", "0", "500", "1000"}[i%4])
		v.Set("bonus", strconv.Itoa(c.bonus))
	case StepAddons:
		v.Set("breakdown", []string{"national", "none", "roadside", "european"}[i%4])
		v.Set("courtesy", "on")
		if i%2 == 0 {
			v.Set("legal", "on")
		}
	case StepMethod:
		v.Set("plan", []string{"annual", "monthly"}[i%2])
		v.Set("provider", providers[i%len(providers)].id)
	case StepCard:
		p := providers[i%len(providers)]
		v.Set("holder", c.name)
		v.Set("number", testCards[p.id])
		v.Set("expiry", "08/"+strconv.Itoa(29+i%5))
	case StepConfirm:
		v.Set("agree", "on")
		if i%3 == 0 {
			v.Set("marketing", "on")
		}
	}
	return v
}

// DriverAnswers returns valid answers to the driver page for driver n of
// customer i: n = 0 is the policyholder, later ones other people. another
// ticks "Add another driver".
func DriverAnswers(i, n int, another bool) url.Values {
	i, n = max(i, -i, 0), max(n, 0)
	v := url.Values{}
	if n == 0 {
		c := customers[i%len(customers)]
		v.Set("name", c.name)
		v.Set("born", c.born)
		v.Set("licensed", strconv.Itoa(c.licensed))
		v.Set("claims", strconv.Itoa(i%3/2)) // every third customer made a claim
		v.Set("relation", "policyholder")
	} else {
		o := others[(i+n-1)%len(others)]
		v.Set("name", o.name)
		v.Set("born", o.born)
		v.Set("licensed", strconv.Itoa(o.licensed))
		v.Set("claims", strconv.Itoa(o.claims))
		v.Set("relation", o.relation)
	}
	if another {
		v.Set("another", "on")
	}
	return v
}
