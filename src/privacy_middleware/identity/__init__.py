"""Who is calling: JWT, token introspection, session resolvers and callables, chosen by name."""

from __future__ import annotations

from .base import CallerRequest, IdentityProvider, unavailable
from .chain import IdentityChain, JwtProvider, build_identity
from .jwt import REQUIRED_CLAIMS, JWKSCache, TokenVerifier, looks_like_jwt, unauthorized

__all__ = [
    "REQUIRED_CLAIMS",
    "CallerRequest",
    "IdentityChain",
    "IdentityProvider",
    "JWKSCache",
    "JwtProvider",
    "TokenVerifier",
    "build_identity",
    "looks_like_jwt",
    "unauthorized",
    "unavailable",
]
