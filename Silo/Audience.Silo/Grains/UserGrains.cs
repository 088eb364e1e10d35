namespace Audience.Silo.Grains;

/// <summary>
/// References to user grains for the partition readers' hot path. <c>GetGrain&lt;IUserGrain&gt;(id)</c> works out
/// the interface's Orleans type name on every call (in Orleans 10.4, uncached: a few percent of a reader's time, and
/// garbage); this resolves the grain and interface types once and builds each reference from them.
/// </summary>
public sealed class UserGrains(IGrainFactory grains)
{
    private readonly (GrainType Type, GrainInterfaceType Interface) _types = Resolve(grains);

    public IUserGrain Get(string userId) => (IUserGrain)grains.GetGrain(GrainId.Create(_types.Type, userId), _types.Interface);

    private static (GrainType, GrainInterfaceType) Resolve(IGrainFactory grains)
    {
        var sample = (GrainReference)(object)grains.GetGrain<IUserGrain>("user");
        return (sample.GetGrainId().Type, sample.InterfaceType);
    }
}
