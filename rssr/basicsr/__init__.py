"""rssr's bridge to BasicSR: compatibility shims, registration, distributed start-up, CLI start-up,
option checking and the BasicSR model classes. Everything that imports basicsr lives here."""
