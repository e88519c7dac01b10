from sqlalchemy.engine import Engine

from rollon.ledger import chart
from rollon.ledger.queries import list_accounts


def test_chart_installed(engine: Engine) -> None:
    with engine.connect() as connection:
        names = {a.name for a in list_accounts(connection)}
    assert names == {s.name for s in chart.SYSTEM_ACCOUNTS}
