from bulwark_api.db import Base
from bulwark_common.db import run_alembic_env

run_alembic_env(Base.metadata, "api")
