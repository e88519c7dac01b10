"""HTTP routes, one module per resource, each exposing `router` (an APIRouter).

To add a resource: write `rollon/api/routes/NAME.py` with
`router = APIRouter(prefix="/v1", tags=["NAME"], responses=PROBLEM_RESPONSES)`, then add its
module path to `ROUTER_MODULES` in `rollon/api/app.py` (one line).
"""
