"""Shipping labels as ZPL (the language of Zebra thermal printers), one label per parcel.

Pure: standard library only. The document is stored with the shipment; a printer
(or a ZPL viewer) renders it.
"""

from __future__ import annotations

from oms_shipping.domain import Shipment

__all__ = ["LABEL_FORMAT", "render_label"]

LABEL_FORMAT = "ZPL"


def _field(text: object) -> str:
    # ^ and ~ start ZPL commands: they must never reach a field's data.
    return str(text).replace("^", " ").replace("~", " ")


def render_label(shipment: Shipment) -> str:
    """The ZPL document of a booked shipment: carrier, service level, tracking number, destination, weight."""
    request, attempt = shipment.request, shipment.attempt
    if request is None or attempt is None or not shipment.tracking_number:
        raise ValueError(f"shipment {shipment.shipment_id} is not booked: no label")
    tracking = _field(shipment.tracking_number)
    count = len(request.packages)
    labels = []
    for n, package in enumerate(request.packages, start=1):
        labels.append(
            "\n".join(
                [
                    "^XA",
                    "^CI28",
                    "^CF0,60",
                    f"^FO40,30^FD{_field(attempt.carrier.upper())}^FS",
                    "^CF0,40",
                    f"^FO40,110^FD{_field(attempt.service_level.upper())} - ship {attempt.promised_ship_date}^FS",
                    f"^FO40,170^FDFrom warehouse {_field(request.warehouse_id)}^FS",
                    f"^FO40,220^FDTo {request.destination.lat:.5f}, {request.destination.lon:.5f} ({request.zone})^FS",
                    f"^FO40,270^FDParcel {n}/{count} {_field(package.package_id)}"
                    f" - {package.weight_grams / 1000:.3f} kg^FS",
                    f"^FO40,320^FDOrder {_field(shipment.order_id)}^FS",
                    f"^FO40,390^BY3^BCN,160,Y,N,N^FD{tracking}^FS",
                    "^XZ",
                ]
            )
        )
    return "\n".join(labels) + "\n"
