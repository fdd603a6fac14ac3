"""Subscribing from the web: the form, and the snippet any site can embed."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
