using Microsoft.AspNetCore.Http.Features;

namespace Audience.Api.Features;

/// <summary>
/// Ids in paths may hold a "/" (a user id "tenant/u1", sent as <c>tenant%2Fu1</c>). Kestrel decodes every escape of a
/// path but <c>%2F</c>, so that "/" stays a separator, and the route value keeps <c>%2F</c>: the handler would look for
/// another user, and an erasure would erase nobody. This filter gives the handler the parameter decoded from the request
/// as sent (its raw target), where <c>%2F</c> and an escaped "%" (<c>%25</c>) cannot be confused.
/// </summary>
internal static class EncodedSlashes
{
    public static TBuilder DecodeSlashesIn<TBuilder>(this TBuilder builder, string parameter)
        where TBuilder : IEndpointConventionBuilder =>
        builder.AddEndpointFilterFactory((factory, next) =>
        {
            var index = Array.FindIndex(factory.MethodInfo.GetParameters(), p => p.Name == parameter);
            if (index < 0)
            {
                return next;
            }

            return context =>
            {
                if (context.Arguments[index] is string value && value.Contains('%', StringComparison.Ordinal)
                    && Decoded(context.HttpContext, parameter) is { } decoded)
                {
                    context.Arguments[index] = decoded;
                }

                return next(context);
            };
        });

    /// <summary>The path segment the route parameter was matched from, as the client sent it, unescaped once.</summary>
    private static string? Decoded(HttpContext http, string parameter)
    {
        if (http.GetEndpoint() is not RouteEndpoint endpoint || http.Features.Get<IHttpRequestFeature>()?.RawTarget is not { } raw)
        {
            return null;
        }

        var at = endpoint.RoutePattern.PathSegments.ToList().FindIndex(s => s.Parts.Any(p => p is Microsoft.AspNetCore.Routing.Patterns.RoutePatternParameterPart q && q.Name == parameter));
        var path = raw.Split('?', 2)[0];
        var segments = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        return at >= 0 && at < segments.Length && endpoint.RoutePattern.PathSegments[at].Parts.Count == 1 ? Uri.UnescapeDataString(segments[at]) : null;
    }
}
