"""RolloN ledger service: the digital core of Normandy's complementary currency."""
