package demo

import "understudy/model"

// Entity types the demo refers to canonically.
const (
	VehicleType  = "vehicles"
	ProviderType = "providers"
)

// vehicle is one row of the demo's car list: values in pounds, insurance
// groups on the UK's 1–50 scale.
type vehicle struct {
	id, make, model string
	year            int64
	value           int64 // whole pounds
	group           int64
	fuel            string
}

// vehicles are offered in this order: by make, as a select box lists them.
var vehicles = []vehicle{
	{"bmw-320d", "BMW", "320d M Sport", 2020, 24900, 30, "diesel"},
	{"ford-fiesta", "Ford", "Fiesta 1.0 EcoBoost Titanium", 2019, 10450, 13, "petrol"},
	{"kia-sportage", "Kia", "Sportage 1.6 T-GDi Hybrid GT-Line", 2022, 27400, 22, "hybrid"},
	{"mini-cooper", "MINI", "Cooper 1.5 Classic", 2018, 11200, 17, "petrol"},
	{"nissan-qashqai", "Nissan", "Qashqai 1.3 DiG-T N-Connecta", 2021, 21500, 20, "petrol"},
	{"porsche-911", "Porsche", "911 Carrera S", 2019, 89000, 50, "petrol"},
	{"skoda-octavia", "Škoda", "Octavia Estate 2.0 TDI SE", 2020, 15600, 19, "diesel"},
	{"tesla-model-3", "Tesla", "Model 3 Long Range", 2023, 38500, 48, "electric"},
	{"toyota-yaris", "Toyota", "Yaris 1.5 Hybrid Icon", 2022, 17300, 13, "hybrid"},
	{"vauxhall-corsa", "Vauxhall", "Corsa 1.2 SE", 2020, 9800, 10, "petrol"},
	{"vw-golf", "Volkswagen", "Golf 1.5 TSI Life", 2021, 19200, 18, "petrol"},
	{"volvo-xc40", "Volvo", "XC40 B4 Plus", 2021, 29900, 27, "hybrid"},
}

// provider is a way to pay: a card scheme and whether it is debit or
// credit.
type provider struct{ id, label, network, kind string }

var providers = []provider{
	{"visa-debit", "Visa Debit", "visa", "debit"},
	{"mastercard-debit", "Mastercard Debit", "mastercard", "debit"},
	{"visa-credit", "Visa Credit", "visa", "credit"},
	{"mastercard-credit", "Mastercard Credit", "mastercard", "credit"},
	{"amex", "American Express", "amex", "credit"},
}

// Vehicles returns the cars a quote can be for, at version 1, in the order
// to offer them. Their fields: make, model (strings), year, group (ints:
// the insurance group, 1–50), value (decimal pounds), fuel (string).
func Vehicles() []*model.Record {
	out := make([]*model.Record, len(vehicles))
	for i, v := range vehicles {
		out[i] = &model.Record{
			Ref:   model.Ref{Type: VehicleType, ID: v.id, Version: 1},
			Label: v.make + " " + v.model + " (" + itoa(v.year) + ")",
			Fields: map[string]model.Value{
				"make":  model.StringVal(v.make),
				"model": model.StringVal(v.model),
				"year":  model.IntVal(v.year),
				"value": model.DecimalVal(v.value*100, 2),
				"group": model.IntVal(v.group),
				"fuel":  model.StringVal(v.fuel),
			},
		}
	}
	return out
}

// Providers returns the ways to pay, at version 1. Their fields: network
// ("visa", "mastercard", "amex") and kind ("debit", "credit").
func Providers() []*model.Record {
	out := make([]*model.Record, len(providers))
	for i, p := range providers {
		out[i] = &model.Record{
			Ref:   model.Ref{Type: ProviderType, ID: p.id, Version: 1},
			Label: p.label,
			Fields: map[string]model.Value{
				"network": model.StringVal(p.network),
				"kind":    model.StringVal(p.kind),
			},
		}
	}
	return out
}

// Entities returns every entity the demo refers to: what a database serving
// it is seeded with (entity.Config.Seed).
func Entities() []*model.Record { return append(Vehicles(), Providers()...) }

// Resolver returns an in-memory resolver holding Entities, for tests and
// examples where a database is not the point.
func Resolver() *model.MemResolver {
	r := model.NewMemResolver()
	for _, e := range Entities() {
		r.Put(e)
	}
	return r
}
