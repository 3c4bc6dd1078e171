"""Where personal data may go from the EEA without more (GDPR Chapter V): within the EEA, and to the
countries the European Commission found adequate (Art. 45). A recipient anywhere else, a third
country, needs a safeguard: the Commission's standard contractual clauses or binding corporate
rules (Art. 46, 47), or, for occasional transfers, one of the derogations of Art. 49.
"""

from __future__ import annotations

from typing import Literal, get_args

Safeguard = Literal["adequacy_decision", "standard_contractual_clauses", "binding_corporate_rules", "derogation"]
SAFEGUARDS: tuple[str, ...] = get_args(Safeguard)

# The EU's 27 member states, and Iceland, Liechtenstein and Norway. Source: the EEA Agreement and
# the EU's list of member states (european-union.europa.eu, "EU countries"), as of 2025-07.
EEA = frozenset({
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IT", "LT", "LU", "LV", "MT",
    "NL", "PL", "PT", "RO", "SE", "SI", "SK",
    "IS", "LI", "NO",
})

# Countries with an adequacy decision covering every recipient in them. Source: the European
# Commission's page "Adequacy decisions" (commission.europa.eu, data protection, international
# dimension), as of 2025-07. Canada's covers organisations under its commercial privacy law (PIPEDA),
# which is where a company's recipients are. The United States' covers only organisations certified
# under the EU-US Data Privacy Framework, which a country cannot tell: a certified US recipient
# declares `safeguard: adequacy_decision`.
ADEQUATE = frozenset({"AD", "AR", "CA", "CH", "FO", "GB", "GG", "IL", "IM", "JE", "JP", "KR", "NZ", "UY"})


Area = Literal["eea", "adequate", "third_country"]


def transfer_area(country: str) -> Area:
    """Where a country (ISO 3166-1 alpha-2) stands: in the EEA, covered by an adequacy decision, or a
    third country, to which a transfer needs a safeguard."""
    if country in EEA:
        return "eea"
    return "adequate" if country in ADEQUATE else "third_country"
