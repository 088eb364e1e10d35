using System.Globalization;
using System.Text;

namespace Audience.LoadTesting;

/// <summary>A self-contained HTML page with an SVG chart of latency (p50, p99, max) and throughput per second.</summary>
internal static class Chart
{
    private const int Width = 900;
    private const int Height = 300;
    private const int Left = 60;
    private const int Bottom = 30;

    public static string Html(ScenarioStats results)
    {
        var seconds = results.Seconds;
        var maxLatency = Math.Max(1, seconds.Count == 0 ? 1 : seconds.Max(s => s.Max));
        var maxRate = Math.Max(1, seconds.Count == 0 ? 1 : seconds.Max(s => s.Events));
        var span = Math.Max(1, seconds.Count - 1);
        double X(int at) => Left + ((Width - Left - 10) * at / (double)span);
        double Y(double value, double max) => Height - Bottom - ((Height - Bottom - 10) * value / max);
        string Line(Func<Second, double> value, string color) =>
            $"<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{string.Join(' ', seconds.Select(s => F(X(s.At)) + "," + F(Y(value(s), maxLatency))))}\"/>";

        var svg = new StringBuilder();
        svg.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{Width}\" height=\"{Height}\" font-family=\"sans-serif\" font-size=\"11\">");
        foreach (var s in seconds)
        {
            var top = Y(s.Events, maxRate);
            svg.Append(CultureInfo.InvariantCulture, $"<rect x=\"{F(X(s.At) - 2)}\" y=\"{F(top)}\" width=\"4\" height=\"{F(Height - Bottom - top)}\" fill=\"#dde\"/>");
        }

        svg.Append(Line(s => s.Max, "#c33")).Append(Line(s => s.P99, "#e80")).Append(Line(s => s.P50, "#36c"));
        svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{Left}\" y1=\"{Height - Bottom}\" x2=\"{Width - 10}\" y2=\"{Height - Bottom}\" stroke=\"#999\"/>");
        svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{Left}\" y1=\"10\" x2=\"{Left}\" y2=\"{Height - Bottom}\" stroke=\"#999\"/>");
        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"4\" y=\"16\">{maxLatency:F1} ms</text><text x=\"4\" y=\"{Height - Bottom}\">0</text>");
        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{Left}\" y=\"{Height - 8}\">0 s</text><text x=\"{Width - 60}\" y=\"{Height - 8}\">{seconds.Count} s</text>");
        svg.Append("</svg>");
        return $"""
            <!DOCTYPE html>
            <html><head><meta charset="utf-8"><title>Load test: {results.Scenario}</title></head>
            <body style="font-family: sans-serif">
            <h2>Load test: {results.Scenario}</h2>
            <p>{System.Net.WebUtility.HtmlEncode(results.Description)}; {System.Net.WebUtility.HtmlEncode(results.Model)}.
            {results.EventsPerSecond.ToString("N0", CultureInfo.InvariantCulture)} events/s; p50 {F(results.Latency.P50)} ms, p99 {F(results.Latency.P99)} ms, max {F(results.Latency.Max)} ms.</p>
            <p>Latency per second of the measured window: <span style="color:#36c">p50</span>, <span style="color:#e80">p99</span>,
            <span style="color:#c33">max</span> (left axis); grey bars: events per second (peak {maxRate.ToString("N0", CultureInfo.InvariantCulture)}).</p>
            {svg}
            </body></html>
            """;
    }

    private static string F(double value) => value.ToString("0.##", CultureInfo.InvariantCulture);
}
