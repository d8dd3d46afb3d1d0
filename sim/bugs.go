package sim

import (
	"fmt"
	"reflect"
	"strings"

	"understudy/internal/bugs"
)

func setBug(cfg *Config, name string) error {
	v := reflect.ValueOf(&cfg.Bugs).Elem()
	for i := range v.NumField() {
		if strings.EqualFold(v.Type().Field(i).Name, name) {
			v.Field(i).SetBool(true)
			return nil
		}
	}
	return fmt.Errorf("unknown bug %q (known: %s)", name, strings.Join(bugs.Names(), ", "))
}
