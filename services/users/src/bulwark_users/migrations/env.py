from bulwark_common.db import run_alembic_env
from bulwark_users.models import Base

run_alembic_env(Base.metadata, "users")
