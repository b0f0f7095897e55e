package config

import "github.com/knadh/koanf/providers/structs"

func confmapProvider(c Config) *structs.Structs { return structs.Provider(c, "koanf") }
