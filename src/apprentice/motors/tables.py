"""Control tables of the supported servo models: register name -> (address, size in bytes).

Addresses are the vendors' (Feetech STS/SMS series manual, ROBOTIS X-series e-Manual); register names
are LeRobot's, so a LeRobot user reads `Present_Position` here exactly as there. The virtual servo bus
serves the same tables, so the two sides of the wire cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from apprentice.motors.errors import BusError

STS_CONTROL_TABLE: dict[str, tuple[int, int]] = {
    # EPROM (persisted; Lock=0 is needed to change it)
    "Firmware_Major_Version": (0, 1),
    "Firmware_Minor_Version": (1, 1),
    "Model_Number": (3, 2),
    "ID": (5, 1),
    "Baud_Rate": (6, 1),
    "Return_Delay_Time": (7, 1),
    "Response_Status_Level": (8, 1),
    "Min_Position_Limit": (9, 2),
    "Max_Position_Limit": (11, 2),
    "Max_Temperature_Limit": (13, 1),
    "Max_Voltage_Limit": (14, 1),
    "Min_Voltage_Limit": (15, 1),
    "Max_Torque_Limit": (16, 2),
    "Phase": (18, 1),
    "Unloading_Condition": (19, 1),
    "LED_Alarm_Condition": (20, 1),
    "P_Coefficient": (21, 1),
    "D_Coefficient": (22, 1),
    "I_Coefficient": (23, 1),
    "Minimum_Startup_Force": (24, 2),
    "CW_Dead_Zone": (26, 1),
    "CCW_Dead_Zone": (27, 1),
    "Protection_Current": (28, 2),
    "Angular_Resolution": (30, 1),
    "Homing_Offset": (31, 2),
    "Operating_Mode": (33, 1),
    "Protective_Torque": (34, 1),
    "Protection_Time": (35, 1),
    "Overload_Torque": (36, 1),
    "Velocity_closed_loop_P_proportional_coefficient": (37, 1),
    "Over_Current_Protection_Time": (38, 1),
    "Velocity_closed_loop_I_integral_coefficient": (39, 1),
    # SRAM
    "Torque_Enable": (40, 1),
    "Acceleration": (41, 1),
    "Goal_Position": (42, 2),
    "Goal_Time": (44, 2),
    "Goal_Velocity": (46, 2),
    "Torque_Limit": (48, 2),
    "Lock": (55, 1),
    "Present_Position": (56, 2),
    "Present_Velocity": (58, 2),
    "Present_Load": (60, 2),
    "Present_Voltage": (62, 1),
    "Present_Temperature": (63, 1),
    "Status": (65, 1),
    "Moving": (66, 1),
    "Present_Current": (69, 2),
    "Maximum_Acceleration": (85, 1),
}

X_SERIES_CONTROL_TABLE: dict[str, tuple[int, int]] = {
    # EEPROM (writable only with Torque_Enable=0)
    "Model_Number": (0, 2),
    "Model_Information": (2, 4),
    "Firmware_Version": (6, 1),
    "ID": (7, 1),
    "Baud_Rate": (8, 1),
    "Return_Delay_Time": (9, 1),
    "Drive_Mode": (10, 1),
    "Operating_Mode": (11, 1),
    "Secondary_ID": (12, 1),
    "Protocol_Type": (13, 1),
    "Homing_Offset": (20, 4),
    "Moving_Threshold": (24, 4),
    "Temperature_Limit": (31, 1),
    "Max_Voltage_Limit": (32, 2),
    "Min_Voltage_Limit": (34, 2),
    "PWM_Limit": (36, 2),
    "Current_Limit": (38, 2),
    "Acceleration_Limit": (40, 4),
    "Velocity_Limit": (44, 4),
    "Max_Position_Limit": (48, 4),
    "Min_Position_Limit": (52, 4),
    "Shutdown": (63, 1),
    # RAM
    "Torque_Enable": (64, 1),
    "LED": (65, 1),
    "Status_Return_Level": (68, 1),
    "Registered_Instruction": (69, 1),
    "Hardware_Error_Status": (70, 1),
    "Velocity_I_Gain": (76, 2),
    "Velocity_P_Gain": (78, 2),
    "Position_D_Gain": (80, 2),
    "Position_I_Gain": (82, 2),
    "Position_P_Gain": (84, 2),
    "Feedforward_2nd_Gain": (88, 2),
    "Feedforward_1st_Gain": (90, 2),
    "Bus_Watchdog": (98, 1),
    "Goal_PWM": (100, 2),
    "Goal_Current": (102, 2),
    "Goal_Velocity": (104, 4),
    "Profile_Acceleration": (108, 4),
    "Profile_Velocity": (112, 4),
    "Goal_Position": (116, 4),
    "Realtime_Tick": (120, 2),
    "Moving": (122, 1),
    "Moving_Status": (123, 1),
    "Present_PWM": (124, 2),
    "Present_Current": (126, 2),
    "Present_Velocity": (128, 4),
    "Present_Position": (132, 4),
    "Velocity_Trajectory": (136, 4),
    "Position_Trajectory": (140, 4),
    "Present_Input_Voltage": (144, 2),
    "Present_Temperature": (146, 1),
}

# Feetech stores some signed registers as sign-magnitude: register -> index of the sign bit.
STS_SIGN_MAGNITUDE_BITS = {"Homing_Offset": 11, "Goal_Velocity": 15, "Present_Velocity": 15}
# Dynamixel stores signed registers as two's complement of the register's own size.
X_SERIES_SIGNED = frozenset(
    {
        "Homing_Offset",
        "Goal_PWM",
        "Goal_Current",
        "Goal_Velocity",
        "Present_PWM",
        "Present_Current",
        "Present_Velocity",
        "Present_Position",
        "Goal_Position",
    }
)

STS_BAUD_RATES = {
    1_000_000: 0,
    500_000: 1,
    250_000: 2,
    128_000: 3,
    115_200: 4,
    57_600: 5,
    38_400: 6,
    19_200: 7,
}
X_SERIES_BAUD_RATES = {
    9_600: 0,
    57_600: 1,
    115_200: 2,
    1_000_000: 3,
    2_000_000: 4,
    3_000_000: 5,
    4_000_000: 6,
}


@dataclass(frozen=True)
class ModelSpec:
    """One servo model: its control table, encodings and factory register values."""

    name: str
    vendor: str  # "feetech" | "dynamixel"
    model_number: int
    resolution: int
    table: dict[str, tuple[int, int]]
    baud_rates: dict[int, int]
    operating_modes: tuple[int, ...]
    eeprom_end: int  # registers below this address are EEPROM
    factory: dict[str, int] = field(default_factory=dict)

    def address(self, register: str) -> tuple[int, int]:
        try:
            return self.table[register]
        except KeyError:
            raise BusError(
                f"register '{register}' is not in the {self.name} control table; known: {sorted(self.table)}"
            ) from None

    def encode(self, register: str, value: int) -> int:
        """Signed host value -> unsigned register value (sign-magnitude or two's complement)."""
        size = self.table[register][1]
        if self.vendor == "feetech":
            bit = STS_SIGN_MAGNITUDE_BITS.get(register)
            if bit is not None:
                magnitude = abs(int(value))
                if magnitude >= 1 << bit:
                    raise BusError(f"{register}={value} does not fit {bit} magnitude bits of {self.name}")
                return magnitude | (1 << bit) if value < 0 else magnitude
        elif register in X_SERIES_SIGNED:
            return int(value) & ((1 << (8 * size)) - 1)
        if value < 0 or value >= 1 << (8 * size):
            raise BusError(f"{register}={value} is outside 0..{(1 << (8 * size)) - 1} for {self.name}")
        return int(value)

    def decode(self, register: str, raw: int) -> int:
        """Unsigned register value -> signed host value."""
        size = self.table[register][1]
        if self.vendor == "feetech":
            bit = STS_SIGN_MAGNITUDE_BITS.get(register)
            if bit is not None and raw & (1 << bit):
                return -(raw & ((1 << bit) - 1))
            return raw
        if register in X_SERIES_SIGNED and raw & (1 << (8 * size - 1)):
            return raw - (1 << (8 * size))
        return raw


_STS_FACTORY = {
    "Firmware_Major_Version": 3,
    "Firmware_Minor_Version": 10,
    "ID": 1,
    "Baud_Rate": 0,
    "Return_Delay_Time": 0,
    "Response_Status_Level": 1,
    "Min_Position_Limit": 0,
    "Max_Position_Limit": 4095,
    "Max_Temperature_Limit": 70,
    "Max_Voltage_Limit": 140,
    "Min_Voltage_Limit": 40,
    "Max_Torque_Limit": 1000,
    "Unloading_Condition": 44,
    "LED_Alarm_Condition": 47,
    "P_Coefficient": 32,
    "D_Coefficient": 32,
    "I_Coefficient": 0,
    "Minimum_Startup_Force": 16,
    "CW_Dead_Zone": 1,
    "CCW_Dead_Zone": 1,
    "Protection_Current": 500,
    "Angular_Resolution": 1,
    "Protective_Torque": 20,
    "Protection_Time": 200,
    "Overload_Torque": 80,
    "Torque_Limit": 1000,
    "Lock": 1,
    "Present_Voltage": 120,
    "Present_Temperature": 28,
    "Maximum_Acceleration": 254,
}

_X_FACTORY = {
    "Firmware_Version": 52,
    "ID": 1,
    "Baud_Rate": 1,
    "Return_Delay_Time": 250,
    "Operating_Mode": 3,
    "Secondary_ID": 255,  # 253..255: no secondary id
    "Protocol_Type": 2,
    "Moving_Threshold": 10,
    "Temperature_Limit": 70,
    "PWM_Limit": 885,
    "Acceleration_Limit": 32767,
    "Max_Position_Limit": 4095,
    "Min_Position_Limit": 0,
    "Shutdown": 52,
    "Status_Return_Level": 2,
    "Present_Temperature": 30,
}

MODELS: dict[str, ModelSpec] = {
    "sts3215": ModelSpec(
        "sts3215", "feetech", 777, 4096, STS_CONTROL_TABLE, STS_BAUD_RATES, (0, 1, 2, 3), 40, _STS_FACTORY
    ),
    "xl330-m077": ModelSpec(
        "xl330-m077",
        "dynamixel",
        1190,
        4096,
        X_SERIES_CONTROL_TABLE,
        X_SERIES_BAUD_RATES,
        (0, 1, 3, 4, 5, 16),
        64,
        {
            **_X_FACTORY,
            "Max_Voltage_Limit": 70,
            "Min_Voltage_Limit": 35,
            "Current_Limit": 1750,
            "Velocity_Limit": 2047,
            "Position_P_Gain": 400,
            "Velocity_I_Gain": 1000,
            "Velocity_P_Gain": 100,
            "Present_Input_Voltage": 50,
        },
    ),
    "xl330-m288": ModelSpec(
        "xl330-m288",
        "dynamixel",
        1200,
        4096,
        X_SERIES_CONTROL_TABLE,
        X_SERIES_BAUD_RATES,
        (0, 1, 3, 4, 5, 16),
        64,
        {
            **_X_FACTORY,
            "Max_Voltage_Limit": 70,
            "Min_Voltage_Limit": 35,
            "Current_Limit": 1750,
            "Velocity_Limit": 445,
            "Position_P_Gain": 400,
            "Velocity_I_Gain": 1000,
            "Velocity_P_Gain": 100,
            "Present_Input_Voltage": 50,
        },
    ),
    "xl430-w250": ModelSpec(
        "xl430-w250",
        "dynamixel",
        1060,
        4096,
        X_SERIES_CONTROL_TABLE,
        X_SERIES_BAUD_RATES,
        (1, 3, 4, 16),
        64,
        {
            **_X_FACTORY,
            "Temperature_Limit": 72,
            "Max_Voltage_Limit": 140,
            "Min_Voltage_Limit": 60,
            "Velocity_Limit": 265,
            "Position_P_Gain": 640,
            "Velocity_I_Gain": 1920,
            "Velocity_P_Gain": 100,
            "Present_Input_Voltage": 120,
        },
    ),
    # Interbotix ViperX / WidowX (ALOHA) and OpenMANIPULATOR: ROBOTIS e-Manual factory values.
    "xm430-w350": ModelSpec(
        "xm430-w350",
        "dynamixel",
        1020,
        4096,
        X_SERIES_CONTROL_TABLE,
        X_SERIES_BAUD_RATES,
        (0, 1, 3, 4, 5, 16),
        64,
        {
            **_X_FACTORY,
            "Temperature_Limit": 80,
            "Max_Voltage_Limit": 160,
            "Min_Voltage_Limit": 95,
            "Current_Limit": 1193,
            "Velocity_Limit": 200,
            "Position_P_Gain": 800,
            "Velocity_I_Gain": 1920,
            "Velocity_P_Gain": 100,
            "Present_Input_Voltage": 120,
        },
    ),
    "xm540-w270": ModelSpec(
        "xm540-w270",
        "dynamixel",
        1120,
        4096,
        X_SERIES_CONTROL_TABLE,
        X_SERIES_BAUD_RATES,
        (0, 1, 3, 4, 5, 16),
        64,
        {
            **_X_FACTORY,
            "Temperature_Limit": 80,
            "Max_Voltage_Limit": 160,
            "Min_Voltage_Limit": 95,
            "Current_Limit": 2047,
            "Velocity_Limit": 200,
            "Position_P_Gain": 800,
            "Velocity_I_Gain": 1920,
            "Velocity_P_Gain": 100,
            "Present_Input_Voltage": 120,
        },
    ),
    # No current sensor (like the XL430): no current-based modes.
    "xc430-w150": ModelSpec(
        "xc430-w150",
        "dynamixel",
        1070,
        4096,
        X_SERIES_CONTROL_TABLE,
        X_SERIES_BAUD_RATES,
        (1, 3, 4, 16),
        64,
        {
            **_X_FACTORY,
            "Temperature_Limit": 80,
            "Max_Voltage_Limit": 160,
            "Min_Voltage_Limit": 60,
            "Velocity_Limit": 460,
            "Position_P_Gain": 640,
            "Velocity_I_Gain": 1920,
            "Velocity_P_Gain": 100,
            "Present_Input_Voltage": 120,
        },
    ),
}

MODEL_BY_NUMBER = {spec.model_number: spec for spec in MODELS.values()}


def model_spec(model: str) -> ModelSpec:
    """The spec of a model name as written in robot YAML files (`sts3215`, `xl330-m288`, ...)."""
    try:
        return MODELS[model]
    except KeyError:
        raise BusError(f"unknown servo model '{model}'; supported: {sorted(MODELS)}") from None
