"""The links mail already carries: confirm a request, leave a list, change delivery."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
