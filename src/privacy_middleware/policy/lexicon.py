"""Recognising personal data by a field's name and format, in the languages of the seed shops' markets.

Used by `policy draft`. Names are split into lower-case words (camelCase, snake_case, kebab-case and
CJK runs), then matched against a small vocabulary per category: English, German, French, Spanish,
Italian, Portuguese, Dutch and Chinese (Hanzi and pinyin). A name alone can be ambiguous (`name` of a
product, `number` of an order), so some words only count inside an object that is itself personal
(a customer, an address, a card).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from ..crypto.cards import luhn_valid

CJK_RE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff]+")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
IPV4_RE = re.compile(r"^(\d{1,3}\.){3}\d{1,3}$")
DIGITS_RE = re.compile(r"^[0-9 -]{13,23}$")


@dataclass(frozen=True, slots=True)
class Suggestion:
    """What a field probably holds and what the draft proposes to do with it on the way in."""

    category: str
    transform: str
    why: str
    validate_as: str = ""
    companions: tuple[str, ...] = ()


# Objects whose keys are personal; their names, in the same languages.
PERSONAL_OBJECTS = {
    "customer", "user", "account", "profile", "contact", "member", "buyer", "recipient", "person", "client",
    "address", "shipping", "delivery", "billing", "invoice", "card", "payment", "holder", "consignee",
    "kunde", "adresse", "lieferadresse", "rechnungsadresse", "karte", "zahlung", "empfaenger",
    "cliente", "direccion", "envio", "facturacion", "tarjeta", "pago", "destinatario",
    "indirizzo", "spedizione", "fatturazione", "carta", "pagamento", "endereco", "entrega", "cartao",
    "livraison", "facturation", "carte", "paiement", "destinataire", "klant", "adres", "bezorging",
    "kehu", "dizhi", "shouhuo", "客户", "用户", "地址", "收货", "收件人", "发票", "银行卡",
}  # fmt: skip
DELIVERY_WORDS = {
    "shipping", "delivery", "ship", "consignee", "lieferadresse", "lieferung", "versand", "envio", "entrega",
    "spedizione", "livraison", "bezorging", "shouhuo", "收货", "收件人", "配送",
}  # fmt: skip
BILLING_WORDS = {
    "billing", "invoice", "bill", "rechnungsadresse", "rechnung", "facturacion", "factura", "fatturazione",
    "facturation", "fatura", "发票", "账单",
}  # fmt: skip
CARD_WORDS = {"card", "karte", "tarjeta", "carta", "carte", "cartao", "银行卡"}

# category -> (words that name it anywhere, words that name it only inside a personal object)
VOCABULARY: dict[str, tuple[set[str], set[str]]] = {
    "user.contact.email": (
        {"email", "e-mail", "mail", "emailaddress", "correo", "courriel", "youxiang", "邮箱", "电子邮件", "邮件"},
        set(),
    ),
    "user.contact.phone": (
        {
            "phone", "telephone", "tel", "mobile", "cell", "cellphone", "telefon", "telefono", "telefone",
            "handy", "movil", "cellulare", "celular", "portable", "shouji", "dianhua", "手机", "电话", "联系电话",
        },
        set(),
    ),
    "user.financial.card.cvv": (
        {"cvv", "cvc", "cvv2", "cvc2", "csc", "securitycode", "cardsecuritycode", "kartenpruefnummer", "安全码"},
        {"cid"},
    ),
    "user.financial.card.number": (
        {"cardnumber", "pan", "ccnumber", "creditcardnumber", "kartennummer", "numerotarjeta", "numerocarte", "卡号"},
        set(),
    ),
    "user.financial.card.expiry": (
        {"expiry", "expiration", "expmonth", "expyear", "expirymonth", "expiryyear", "ablaufdatum", "有效期"},
        set(),
    ),
    "user.financial.card.holder": ({"cardholder", "holdername", "cardholdername", "持卡人"}, {"holder"}),
    "user.financial.bank_account": (
        {"iban", "bankaccount", "accountnumber", "kontonummer", "bic", "swift", "routingnumber", "银行账号"},
        set(),
    ),
    "user.government_id": (
        {
            "ssn", "nationalid", "passport", "passportnumber", "idnumber", "taxid", "vatid", "personalausweis",
            "steuerid", "dni", "nie", "nif", "cpf", "curp", "rut", "codicefiscale", "shenfenzheng",
            "身份证", "身份证号", "护照",
        },
        set(),
    ),
    "user.demographic.birth_date": (
        {
            "birthdate", "dateofbirth", "dob", "birthday", "geburtsdatum", "geburtstag", "datenaissance",
            "fechanacimiento", "datanascita", "datanascimento", "geboortedatum", "shengri", "出生日期", "生日",
        },
        set(),
    ),
    "user.demographic.gender": ({"gender", "sex", "geschlecht", "genre", "genero", "sesso", "xingbie", "性别"}, set()),
    "user.device.ip_address": ({"ip", "ipaddress", "remoteaddr", "clientip", "remoteip", "ipaddr"}, set()),
    "user.device.id": (
        {"deviceid", "idfa", "gaid", "advertisingid", "visitorid", "clientid", "cookieid", "anonymousid", "deviceuuid"},
        set(),
    ),
    "user.id": ({"customerid", "userid", "accountid", "memberid", "buyerid", "kundennummer", "kundenid"}, set()),
    "user.contact.address.street": (
        {
            "street", "streetaddress", "addressline", "addressline1", "addressline2", "line1", "line2", "address1",
            "address2", "strasse", "straße", "hausnummer", "rue", "calle", "via", "rua", "straat", "jiedao", "街道",
            "详细地址",
        },
        {"address", "line", "adresse", "direccion", "indirizzo", "endereco", "dizhi", "地址"},
    ),
    "user.contact.address.city": (
        {"city", "town", "stadt", "ort", "ville", "ciudad", "citta", "cidade", "stad", "chengshi", "城市"},
        {"locality"},
    ),
    "user.contact.address.postal_code": (
        {
            "postalcode", "postcode", "zip", "zipcode", "plz", "postleitzahl", "codepostal", "codigopostal", "cap",
            "cep", "youbian", "邮编", "邮政编码",
        },
        set(),
    ),
    "user.contact.address.region": (
        {"state", "province", "region", "county", "bundesland", "provincia", "provincie", "shengfen", "省份"},
        set(),
    ),
    "user.contact.address.country": (
        {"country", "countrycode", "land", "pays", "pais", "paese", "guojia", "国家"},
        set(),
    ),
    "user.name": (
        {
            "firstname", "lastname", "fullname", "givenname", "familyname", "surname", "middlename", "vorname",
            "nachname", "prenom", "nom", "nombre", "apellido", "apellidos", "cognome", "sobrenome", "voornaam",
            "achternaam", "xingming", "姓名", "名字",
        },
        {"name", "first", "last"},
    ),
    "user.content.free_text": (
        {"note", "notes", "comment", "comments", "remark", "remarks", "message", "bemerkung", "anmerkung", "nota",
         "commentaire", "comentario", "beizhu", "备注", "留言"},
        set(),
    ),
}  # fmt: skip

# What the draft proposes on the way in, per category (most specific prefix wins).
PROPOSALS: dict[str, tuple[str, str]] = {
    "user.financial.card.number": ("encrypt", "card numbers are never stored in clear (PCI DSS 3.5)"),
    "user.financial.card.cvv": ("strip", "a CVV must never be stored (PCI DSS 3.3.1)"),
    "user.financial.card": ("encrypt", "payment card data is encrypted at rest"),
    "user.financial": ("encrypt", "financial data is encrypted at rest"),
    "user.government_id": ("strip", "identity document numbers: collect only if a law requires it"),
    "user.contact.address": ("encrypt", "addresses are encrypted; partners see them through `sees`"),
    "user.contact.phone": ("encrypt", "phone numbers are encrypted; the carrier sees them through `sees`"),
    "user.contact.email": (
        "keep",
        "kept for look-ups; use encrypt_deterministic, or a format-shaped token if the shop validates it",
    ),
    "user.demographic.birth_date": ("encrypt", "needed once for the age check, then encrypted"),
    "user.demographic": ("encrypt", "demographic data is encrypted"),
    "user.device.ip_address": ("keep", "kept for security; retention deletes raw IPs"),
    "user.device": ("keep", "device identifiers: pseudonymised for analytics recipients"),
    "user.name": ("encrypt", "names are encrypted; partners see them through `sees`"),
    "user.id": ("keep", "the account id names the subject"),
    "user.content": ("keep", "free text: scanned for card numbers and national ids (see free_text)"),
}

VALIDATORS = {
    "user.financial.card.number": "card_number",
    "user.contact.email": "email",
    "user.contact.phone": "phone",
    "user.demographic.birth_date": "iso_date",
}


def words(name: str) -> list[str]:
    """`shippingAddress_line1` -> ['shipping', 'address', 'line', '1']; `Straße` -> ['strasse'].

    Unicode-aware: NFKC first, a word starts at a lower-to-upper change or a letter-digit change,
    CJK runs stay whole, and words are casefolded.
    """
    found: list[str] = []
    current = ""
    previous = ""
    for char in unicodedata.normalize("NFKC", name):
        cjk = bool(CJK_RE.match(char))
        if not (char.isalnum() or cjk):
            boundary, char = True, ""
        else:
            boundary = bool(current) and (
                (char.isupper() and previous.islower())
                or (char.isdigit() != previous.isdigit())
                or (cjk != bool(CJK_RE.match(previous)))
            )
        if boundary and current:
            found.append(current.casefold())
            current = ""
        current += char
        previous = char or previous
    if current:
        found.append(current.casefold())
    return found


def _forms(name: str) -> set[str]:
    """The words of a name, their concatenation and, for CJK runs, every inner run of 2+ characters."""
    parts = words(name)[:12]
    forms = {"".join(parts[i:j]) for i in range(len(parts)) for j in range(i + 1, len(parts) + 1)}
    for part in parts:
        if CJK_RE.fullmatch(part) and len(part) <= 12:
            forms.update(part[i:j] for i in range(len(part)) for j in range(i + 2, len(part) + 1))
    return forms


def _proposal(category: str) -> tuple[str, str]:
    parts = category.split(".")
    for cut in range(len(parts), 0, -1):
        found = PROPOSALS.get(".".join(parts[:cut]))
        if found:
            return found
    return ("keep", "review")


def _address_kind(ancestors: list[str]) -> str:
    seen = set().union(*(_forms(a) for a in ancestors)) if ancestors else set()
    if seen & BILLING_WORDS:
        return "billing"
    if seen & DELIVERY_WORDS:
        return "delivery"
    return ""


def is_personal_object(name: str) -> bool:
    return bool(_forms(name) & PERSONAL_OBJECTS)


def classify(name: str, ancestors: list[str], *, fmt: str = "", example: object = None) -> Suggestion | None:
    """The category a field named `name` (inside objects named `ancestors`) probably holds, or None."""
    forms = _forms(name)
    personal_context = any(is_personal_object(a) for a in ancestors)
    in_card = any(_forms(a) & CARD_WORDS for a in ancestors)
    category = ""
    why = ""
    if in_card and forms & {"number", "num", "nummer", "numero"}:
        category, why = "user.financial.card.number", f"'{name}' inside a card object"
    if not category:
        for candidate, (anywhere, in_context) in VOCABULARY.items():
            if forms & anywhere or (personal_context and forms & in_context):
                category, why = candidate, f"the name '{name}'"
                break
    if not category:
        category, why = _by_format(fmt, example)
    if not category:
        return None
    if in_card and category == "user.name":
        category = "user.financial.card.holder"
    if category.startswith("user.contact.address."):
        kind = _address_kind([*ancestors, name])
        if kind == "billing":
            category = "user.contact.address.billing"
        elif kind == "delivery":
            category = category.replace("user.contact.address.", "user.contact.address.delivery.")
    if category == "user.name" and _address_kind(ancestors) == "delivery":
        category = "user.contact.address.delivery.name"
    elif category == "user.name" and _address_kind(ancestors) == "billing":
        category = "user.contact.address.billing"
    transform, reason = _proposal(category)
    companions = ("last4", "brand") if category == "user.financial.card.number" else ()
    return Suggestion(category, transform, f"{why}: {reason}", VALIDATORS.get(category, ""), companions)


def _by_format(fmt: str, example: object) -> tuple[str, str]:
    fmt = fmt.lower()
    if fmt in {"email", "idn-email"}:
        return "user.contact.email", "format email"
    if fmt in {"ipv4", "ipv6", "ip"}:
        return "user.device.ip_address", f"format {fmt}"
    if fmt in {"phone", "tel", "e164"}:
        return "user.contact.phone", f"format {fmt}"
    if isinstance(example, str):
        if EMAIL_RE.match(example):
            return "user.contact.email", "an e-mail address in the example"
        if DIGITS_RE.match(example):
            digits = example.replace(" ", "").replace("-", "")
            if 13 <= len(digits) <= 19 and luhn_valid(digits):
                return "user.financial.card.number", "a Luhn-valid card number in the example"
        if IPV4_RE.match(example):
            return "user.device.ip_address", "an IP address in the example"
    return "", ""
