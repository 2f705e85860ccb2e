"""The planted-waste script shared by every provider's run in tests/test_waste_across_providers.py:
its texts (a system prompt as long as agents send), the kinds each call must be flagged with, and the billed
size that keeps caps out of the way."""

from __future__ import annotations

from otel_tokenkpi import semconv as sc

# An agent's system prompt is long (house rules, one line per destination): about 2,000 o200k tokens, so the
# re-sent prefix passes every listed model's prompt-cache minimum (1,024 for gpt-4o, Gemini 2.5 Flash and
# Claude 3.5 Sonnet; 2,048 for Claude Sonnet 4.6) and re-sending it uncached is waste (docs/cache-eligibility.md).
_GENERAL_RULES = (
    "Ask for the travel dates, the number of travellers and the budget before you suggest anything.",
    "Never book, pay or cancel anything yourself: propose options and let the traveller decide.",
    "Quote prices in the traveller's currency and say when a price is an estimate.",
    "Check visa and entry requirements for the traveller's nationality and say where you found them.",
    "Mention travel insurance once per trip, not on every turn.",
    "Prefer trains to flights for journeys under four hours and say how much carbon that saves.",
    "When the weather is bad, suggest indoor alternatives near the original plan.",
    "Keep answers short: one sentence unless the traveller asks for more detail.",
    "If a tool fails, say so plainly and offer to try again rather than guessing.",
    "Do not repeat a tool call you have already made in this conversation: reuse its result.",
    "Respect dietary needs, accessibility needs and travel with children in every suggestion.",
    "Never share one traveller's details with another, and never ask for card numbers.",
)
_DESTINATIONS = (
    ("Paris", "Europe/Paris", "most museums close one day a week, the Louvre on Tuesdays"),
    ("Rome", "Europe/Rome", "the Vatican Museums close on Sundays except the last one of the month"),
    ("Madrid", "Europe/Madrid", "lunch is served late, rarely before two in the afternoon"),
    ("Lisbon", "Europe/Lisbon", "the hills are steep and trams 28 and 12 are crowded in summer"),
    ("Berlin", "Europe/Berlin", "many shops are closed on Sundays and public holidays"),
    ("Vienna", "Europe/Vienna", "concert tickets for the State Opera sell out weeks ahead"),
    ("Prague", "Europe/Prague", "the local currency is the Czech koruna, not the euro"),
    ("Amsterdam", "Europe/Amsterdam", "bicycles have right of way on the red cycle lanes"),
    ("Copenhagen", "Europe/Copenhagen", "card payment is accepted almost everywhere, cash rarely"),
    ("Oslo", "Europe/Oslo", "winter daylight lasts about six hours in December"),
    ("Stockholm", "Europe/Stockholm", "the archipelago ferries run a reduced timetable in winter"),
    ("Helsinki", "Europe/Helsinki", "the ferry to Tallinn takes about two hours"),
    ("Reykjavik", "Atlantic/Reykjavik", "weather changes quickly and roads inland close in winter"),
    ("Dublin", "Europe/Dublin", "it rains often, so suggest indoor alternatives"),
    ("London", "Europe/London", "contactless cards work on the Underground and buses"),
    ("Edinburgh", "Europe/London", "the city is full during the festival in August"),
    ("Athens", "Europe/Athens", "the Acropolis is hottest and busiest at midday in summer"),
    ("Istanbul", "Europe/Istanbul", "mosques close to visitors during the five daily prayers"),
    ("Cairo", "Africa/Cairo", "the pyramids at Giza are best visited early in the morning"),
    ("Marrakesh", "Africa/Casablanca", "bargaining is expected in the souks"),
    ("Cape Town", "Africa/Johannesburg", "the cable car up Table Mountain stops in strong wind"),
    ("Nairobi", "Africa/Nairobi", "safari parks need bookings made well in advance"),
    ("Dubai", "Asia/Dubai", "summer temperatures often exceed forty degrees Celsius"),
    ("Mumbai", "Asia/Kolkata", "the monsoon runs from June to September"),
    ("Delhi", "Asia/Kolkata", "air quality is poorest from November to January"),
    ("Bangkok", "Asia/Bangkok", "temples require covered shoulders and knees"),
    ("Singapore", "Asia/Singapore", "eating and drinking on the metro is fined"),
    ("Hong Kong", "Asia/Hong_Kong", "typhoon signals can close ferries and shops at short notice"),
    ("Tokyo", "Asia/Tokyo", "trains stop running shortly after midnight"),
    ("Kyoto", "Asia/Tokyo", "temples close early, often by five in the afternoon"),
    ("Seoul", "Asia/Seoul", "many museums close on Mondays"),
    ("Sydney", "Australia/Sydney", "the seasons are the reverse of the northern hemisphere"),
    ("Auckland", "Pacific/Auckland", "ferries to Waiheke Island fill up on summer weekends"),
    ("New York", "America/New_York", "tipping of fifteen to twenty percent is expected in restaurants"),
    ("Toronto", "America/Toronto", "winter storms can delay flights for a day or more"),
    ("Mexico City", "America/Mexico_City", "the altitude is over two thousand metres"),
    ("Lima", "America/Lima", "the coast is grey and cool from June to September"),
    ("Buenos Aires", "America/Argentina/Buenos_Aires", "dinner rarely starts before nine in the evening"),
    ("Rio de Janeiro", "America/Sao_Paulo", "beaches are crowded during Carnival week"),
    ("San Francisco", "America/Los_Angeles", "summer mornings are often foggy and cold"),
)
SYSTEM = "\n".join(
    [
        "You are a careful travel agent. Follow these house rules on every turn.",
        *(f"- {rule}" for rule in _GENERAL_RULES),
        "Destinations:",
        *(
            f"{number}. {city}: check get_weather before you suggest anything outdoors, give temperatures in "
            f"Celsius, give times in the {zone} time zone, and tell the traveller that {note}."
            for number, (city, zone, note) in enumerate(_DESTINATIONS, 1)
        ),
    ]
)
ASK = "What's the weather in Paris?"
ARGS = '{"city": "Paris", "unit": "C"}'
ARGS_REORDERED = '{"unit": "C", "city": "Paris"}'
RESULT_1 = '{"temp": 21, "sky": "clear"}'
RESULT_2 = '{"temp": 21, "sky": "clear", "again": true}'
PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}}}
KINDS = {
    "failed_call": sc.WASTE_FAILED_CALL_TOKENS,
    "repeated_request": sc.WASTE_REPEATED_REQUEST_TOKENS,
    "truncated_output": sc.WASTE_TRUNCATED_OUTPUT_TOKENS,
    "duplicate_tool_call": sc.WASTE_DUPLICATE_TOOL_CALL_TOKENS,
    "uncached_resent": sc.WASTE_UNCACHED_RESENT_TOKENS,
}
# The kinds for a model whose prompt cache could have served the re-sent SYSTEM; where the model has no
# cache rule (or no cache), "uncached_resent" is never flagged (test_waste_across_providers.expected_kinds).
EXPECTED_KINDS = [
    set(),
    {"duplicate_tool_call", "uncached_resent"},
    {"truncated_output", "duplicate_tool_call", "uncached_resent"},
    {"repeated_request"},
    set(),
]
BIG = 4000  # billed input per call: room for every local count (SYSTEM included), so no cap hides a kind
