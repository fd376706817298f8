"""Step images: building, pulling, saving and sharing them through the store and a registry."""
