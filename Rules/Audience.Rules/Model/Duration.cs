using System.Globalization;

namespace Audience.Rules.Model;

public enum DurationUnit : byte
{
    Minutes,
    Hours,
    Days,
    Weeks,
}

/// <summary>A length of time as a rule writes it (<c>30m</c>, <c>12h</c>, <c>7d</c>, <c>2w</c>).</summary>
public readonly record struct Duration(long Amount, DurationUnit Unit)
{
    /// <summary>The longest duration a rule may name; longer ones are rejected by the parser.</summary>
    public const long MaxMilliseconds = 3650L * 24 * 3600 * 1000;

    public long Milliseconds => Amount * UnitMilliseconds(Unit);

    public static long UnitMilliseconds(DurationUnit unit) => unit switch
    {
        DurationUnit.Minutes => 60_000L,
        DurationUnit.Hours => 3_600_000L,
        DurationUnit.Days => 86_400_000L,
        DurationUnit.Weeks => 7 * 86_400_000L,
        _ => throw new ArgumentOutOfRangeException(nameof(unit)),
    };

    public static bool TryUnit(char c, out DurationUnit unit)
    {
        switch (c)
        {
            case 'm': unit = DurationUnit.Minutes; return true;
            case 'h': unit = DurationUnit.Hours; return true;
            case 'd': unit = DurationUnit.Days; return true;
            case 'w': unit = DurationUnit.Weeks; return true;
            default: unit = default; return false;
        }
    }

    /// <summary>Reads <c>7d</c> and the like; the amount is a whole number.</summary>
    public static bool TryParse(string text, out Duration duration)
    {
        duration = default;
        if (text.Length < 2 || !TryUnit(text[^1], out var unit)
            || !long.TryParse(text.AsSpan(0, text.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var amount)
            || amount > MaxMilliseconds / UnitMilliseconds(unit))
        {
            return false;
        }

        duration = new Duration(amount, unit);
        return true;
    }

    public override string ToString() => Amount.ToString(CultureInfo.InvariantCulture) + Unit switch
    {
        DurationUnit.Minutes => "m",
        DurationUnit.Hours => "h",
        DurationUnit.Days => "d",
        _ => "w",
    };
}
